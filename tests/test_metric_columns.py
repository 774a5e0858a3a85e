"""Issue 13 (part): a failing metric fails only its column; presentation reads metric attributes."""
import pandas as pd
import benchkit
from benchkit.interfaces import ImageMetric
from benchkit.registry import Registry
from benchkit.results import failures, load_results
from benchkit.runner import RunConfig, run
from benchkit.tables import format_tables

from conftest import TestPlugins


class Exploding(ImageMetric):
    name = "exploding"

    def score(self, prediction, target, known):
        raise RuntimeError("no weights")


class Darkness(ImageMetric):
    """Mean darkness of the hole: lower is better here, and it has its own unit."""

    name = "darkness"
    higher_is_better = False
    unit, digits = "%", 1

    def score(self, prediction, target, known):
        return 100 * (1 - prediction.double()).mean((1, 2, 3))


class MetricPlugins(TestPlugins):
    @benchkit.hookimpl
    def register_metrics(self, register):
        register(Exploding)
        register(Darkness)


def test_a_failing_metric_fails_only_its_column(tmp_path):
    registry = Registry(block_external=True, extra=[MetricPlugins()])
    config = RunConfig(methods=["mean-fill"], datasets=["tiny"], masks=["center"], n_images=8,
                       metrics=["psnr", "exploding"], out=tmp_path / "r")
    outcome = run(config, registry, show_progress=False)
    df = load_results(tmp_path / "r")
    assert len(df) == 8 and df.psnr.notna().all() and df.exploding.isna().all()
    assert len(outcome.failed) == 1 and outcome.failed[0].ok  # the method's cell stands
    assert failures(tmp_path / "r").error.tolist() == ["metric 'exploding': RuntimeError: no weights"]


def test_tables_read_direction_unit_and_digits_from_the_metric(monkeypatch):
    import benchkit.registry

    original = benchkit.registry.Registry

    class WithMetrics(original):
        def __init__(self, block_external=None, extra=()):
            super().__init__(True, [MetricPlugins()])

    monkeypatch.setattr(benchkit.registry, "Registry", WithMetrics)
    df = pd.DataFrame({"dataset": "d", "mask": "center", "method": ["a", "a", "b", "b"], "image_id": [0, 1, 0, 1],
                       "darkness": [10.0, 20.0, 30.0, 50.0]})
    text = format_tables(df, ["darkness"], "latex")
    assert "% darkness (%) on d" in text and "lower is better" in text
    assert r"a & \textbf{15.0 $\pm$ 63.5} \\" in text  # the lower mean in bold, one decimal
