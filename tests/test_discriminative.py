"""P-IDS and U-IDS (CoModGAN; MAT's evaluation script) on hand-built feature sets."""
import numpy as np
import pytest

from benchkit.builtins.metrics.feature_stats import discriminative_scores
from benchkit.plugin.metric import MetricState
from benchkit.plugin.registry import Registry

pytest.importorskip("sklearn")


def test_a_swapped_pair_is_the_only_error_of_a_wide_margin():
    """Reals at +1..+N, fakes at -1..-N on a line, except pair 0, whose fake sits at +5 and real at
    -5. Any separating direction with its threshold inside the margin (-1, 1) misclassifies exactly
    that pair's two points (U-IDS = 2 / 2N) and ranks exactly that fake above its real (P-IDS = 1/N)."""
    n = 100
    real = np.arange(1, n + 1, dtype=float)[:, None]
    fake = -real.copy()
    real[0, 0], fake[0, 0] = -5.0, 5.0
    pids, uids = discriminative_scores(real, fake)
    assert uids == pytest.approx(2 / (2 * n))
    assert pids == pytest.approx(1 / n)


def test_separable_sets_score_zero_and_identical_ones_cannot_be_ranked():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 3)) + [4, 0, 0]
    fake = rng.normal(size=(60, 3)) - [4, 0, 0]
    assert discriminative_scores(real, fake) == (0.0, 0.0)  # a margin of about 8 along x
    same = rng.normal(size=(60, 3))
    pids, uids = discriminative_scores(same, same)
    assert pids == 0.0  # equal decision values: no fake strictly above its real
    assert uids == pytest.approx(0.5)  # one side of the line holds both copies of every point


def test_the_metrics_warn_when_there_are_fewer_images_than_features():
    registry = Registry(block_external=True)
    metric = registry.create("metric", "uids-fmnist")
    metric.state = MetricState(metric.states)
    rng = np.random.default_rng(1)
    metric.state.add("real", rng.normal(size=(8, 16)) + 3)
    metric.state.add("fake", rng.normal(size=(8, 16)))
    with pytest.warns(UserWarning, match="uids-fmnist on 8 images of 16 features"):
        assert metric.compute() == 0.0
    assert {"pids", "uids", "pids-fmnist", "uids-fmnist"} <= set(registry.names("metric"))


def test_without_scikit_learn_the_run_stops_before_writing(monkeypatch, tmp_path, capsys):
    import importlib.util

    from benchkit.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    code = main(["run", "--methods", "mean-fill", "--masks", "center", "--metrics", "pids-fmnist", "--n-images", "4",
                 "--out", str(tmp_path / "r")])
    assert code == 2 and "pip install 'benchkit[ids]'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
