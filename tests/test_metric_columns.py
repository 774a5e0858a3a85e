"""A failing metric fails only its column; presentation reads metric attributes."""
from conftest import TestPlugins

import benchkit
from benchkit.plugin.interfaces import ImageMetric
from benchkit.plugin.registry import Registry
from benchkit.report.tables import format_tables
from benchkit.run.runner import RunConfig, run
from benchkit.store.results import failures, load_results, run_display


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


def test_tables_read_direction_unit_and_digits_from_the_results_folder(tmp_path):
    """A plugin metric is shown like a built-in one, from what the results folder recorded: the
    report needs no plugin (the tables below are rendered without MetricPlugins loaded)."""
    registry = Registry(block_external=True, extra=[MetricPlugins()])
    out = tmp_path / "r"
    run(RunConfig(methods=["mean-fill", "tv[max_iter=5]"], datasets=["tiny"], masks=["center"], n_images=4,
                  metrics=["darkness", "psnr"], out=out), registry, show_progress=False)
    df = load_results(out)
    text = format_tables(df, ["darkness"], "latex", display=run_display(out))
    assert "% darkness (%) on tiny" in text and "lower is better" in text
    means = df.groupby("method").darkness.mean()
    best, worse = means.idxmin(), means.idxmax()
    tex = {m: m.replace("_", "\\_") for m in means.index}
    assert f"{tex[best]} & \\textbf{{{means[best]:.1f}" in text  # the lower mean in bold, one decimal
    assert f"{tex[worse]} & {means[worse]:.1f}" in text
