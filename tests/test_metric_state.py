"""One metric lifecycle (reset / update / compute over states that merge by sum or
concatenation), updated where the images are, merged by the writer, per subset of images."""
import numpy as np
import pytest
import scipy.linalg
import torch

from benchkit.builtins.metrics.feature_stats import FeatureDistance, KernelDistance
from benchkit.builtins.metrics.pixel import PSNR
from benchkit.plugin.metric import Batch, FeatureBank, MetricState
from benchkit.plugin.metric import merge_states as merge
from benchkit.run.evaluation import ALL, compute_sets, update

torch.manual_seed(0)
PROJECTION = torch.randn(3 * 8 * 8, 6, dtype=torch.float64)


class Projected:
    """Features: a fixed random projection of the pixels (6 numbers per image)."""

    source = ("projection",)

    def features(self, images):
        return images.double().flatten(1) @ PROJECTION


class ProjectedFrechet(Projected, FeatureDistance):
    name = "projected-fid"


class ProjectedKernel(Projected, KernelDistance):
    name = "projected-kid"


def reference_fid(fake, real):
    """Fréchet distance written out: means, sample covariances, scipy's matrix square root."""
    mu1, mu2, s1, s2 = fake.mean(0), real.mean(0), np.cov(fake.T), np.cov(real.T)
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)


def images(n, seed):
    generator = torch.Generator().manual_seed(seed)
    truth = torch.rand(n, 3, 8, 8, generator=generator)
    composite = (truth + 0.2 * torch.rand(n, 3, 8, 8, generator=generator)).clamp(0, 1)
    known = torch.rand(n, 1, 8, 8, generator=generator) > 0.5
    return composite, truth, known


def test_states_merge_by_sum_and_by_concatenation():
    a, b = MetricState({"total": "sum", "rows": "cat"}), MetricState({"total": "sum", "rows": "cat"})
    a.add("total", np.array([1.0, 2.0]))
    a.add("rows", np.array([[1, 2]]))
    b.add("total", np.array([10.0, 20.0]))
    b.add("rows", np.array([[3, 4], [5, 6]]))
    merged = MetricState(a.reductions).merge(a).merge(b)
    np.testing.assert_array_equal(merged.get("total"), [11.0, 22.0])
    np.testing.assert_array_equal(merged.get("rows"), [[1, 2], [3, 4], [5, 6]])
    again = MetricState.from_arrays(merged.reductions, merged.arrays())
    np.testing.assert_array_equal(again.get("rows"), merged.get("rows"))


def test_fid_merged_from_two_shards_equals_the_whole_set():
    composite, truth, known = images(40, 1)
    metric = ProjectedFrechet()
    states = [update({"fid": metric}, composite[part], truth[part], known[part], None, 7, "cpu",
                     list(range(40))[part]).states for part in (slice(0, 15), slice(15, 40))]
    merged = merge(states)
    value = compute_sets({"fid": metric}, merged, {})["fid"][ALL]
    fake, real = (Projected().features(x).numpy() for x in (composite, truth))
    assert value == pytest.approx(reference_fid(fake, real), rel=1e-6)
    assert merged["fid"][ALL].get("fake_count") == 40


def test_set_metrics_per_subset_from_merged_shard_states():
    composite, truth, known = images(50, 2)
    hole = (~known).flatten(1).float().mean(1)
    subsets = {ALL: torch.ones(50, dtype=torch.bool), "small holes": hole < 0.5, "large holes": hole >= 0.5}
    metrics = {"fid": ProjectedFrechet(), "kid": ProjectedKernel()}
    parts = (slice(0, 20), slice(20, 33), slice(33, 50))
    states = merge([update(metrics, composite[p], truth[p], known[p], None, 8, "cpu", list(range(50))[p],
                           FeatureBank(), {k: v[p] for k, v in subsets.items()}).states for p in parts])
    values = compute_sets(metrics, states, {})
    for subset, rows in subsets.items():
        fake, real = (Projected().features(x[rows]).numpy() for x in (composite, truth))
        assert values["fid"][subset] == pytest.approx(reference_fid(fake, real), rel=1e-6)
        d, n = fake.shape[1], len(fake)
        k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
        off = ~np.eye(n, dtype=bool)
        kid = k(fake, fake)[off].mean() + k(real, real)[off].mean() - 2 * k(fake, real).mean()
        assert values["kid"][subset] == pytest.approx(kid, rel=1e-9)


def test_a_subset_too_small_is_nan_and_the_metric_stands():
    composite, truth, known = images(10, 3)
    subsets = {ALL: torch.ones(10, dtype=torch.bool), "one image": torch.arange(10) == 4}
    out = update({"fid": ProjectedFrechet()}, composite, truth, known, None, 4, "cpu", subsets=subsets)
    errors = {}
    values = compute_sets({"fid": ProjectedFrechet()}, out.states, errors)
    assert np.isnan(values["fid"]["one image"]) and np.isfinite(values["fid"][ALL]) and not errors


def test_per_image_state_is_the_scores_in_order_whatever_the_batches():
    composite, truth, known = images(11, 4)
    expected = 10 * torch.log10(1 / (composite.double() - truth.double()).pow(2).flatten(1).mean(1))
    for batch_size in (1, 4, 11):
        column = update({"psnr": PSNR()}, composite, truth, known, None, batch_size, "cpu").columns["psnr"]
        np.testing.assert_allclose(column, expected.numpy(), rtol=1e-12)


def test_features_are_computed_once_per_batch_and_truth_once_per_image():
    calls = []

    class Counted(Projected, FeatureDistance):
        name = "counted"

        def features(self, images):
            calls.append(len(images))
            return super().features(images)

    composite, truth, known = images(12, 5)
    bank = FeatureBank()
    metrics = {"a": Counted(), "b": Counted()}
    update(metrics, composite, truth, known, None, 6, "cpu", list(range(12)), bank)
    assert calls == [6, 6, 6, 6]  # per batch: composites once, ground truth once, for both metrics
    update(metrics, composite.flip(0), truth, known, None, 12, "cpu", list(range(12)), bank)
    assert calls == [6, 6, 6, 6, 12]  # the ground truth of the same images is not computed again
    batch = Batch(composite, truth, known, image_ids=tuple(range(12)), bank=bank)
    whole = batch.features(Projected.source, "prediction", Projected().features)
    torch.testing.assert_close(batch.subset(torch.arange(12) % 3 == 0).features(Projected.source, "prediction", None),
                               whole[::3])


def test_score_later_gives_the_run_s_numbers_for_an_8_bit_method(tmp_path):
    """A method whose outputs lie on the 8-bit grid has float composites equal to its kept uint8
    ones, so scoring them later (``benchkit score``) repeats the run's numbers exactly."""
    import benchkit
    from benchkit.plugin.interfaces import Method
    from benchkit.plugin.registry import Registry
    from benchkit.run.runner import RunConfig, run

    class EightBitFill(Method):
        name = "eight-bit-fill"

        def inpaint(self, images, known):
            mean = (images * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
            return torch.round(mean.expand_as(images) * 255) / 255

    class Plugins:
        @benchkit.hookimpl
        def register_methods(self, register):
            register(EightBitFill)

    metrics = ["psnr", "class-acc", "fid-fmnist", "kid-fmnist"]
    common = dict(methods=["eight-bit-fill"], masks=["center", "random"], n_images=24, shard_size=10)
    registry = Registry(block_external=True, extra=[Plugins()])
    run(RunConfig(out=tmp_path / "all", metrics=metrics, **common), registry, show_progress=False)
    run(RunConfig(out=tmp_path / "later", metrics=["psnr"], **common), registry, show_progress=False)
    from benchkit.run.scoring import score

    score(tmp_path / "later", metrics[1:], registry)
    for level in ("image", "set"):
        a, b = (benchkit.load_results(tmp_path / x, level=level) for x in ("all", "later"))
        columns = [c for c in metrics if c in a.columns]
        # per image: exact; set metrics: the run merged 10-image shard states, score took the cell whole
        np.testing.assert_allclose(a[columns].to_numpy(float), b[columns].to_numpy(float),
                                   rtol=0 if level == "image" else 1e-6)
