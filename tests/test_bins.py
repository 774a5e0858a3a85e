"""Set metrics per hole-area bin (--bins): LaMa's binning, scores over each bin's images."""
import math

import pytest

from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import SetMetric
from benchkit.plugin.registry import Registry
from benchkit.run.evaluation import bin_index, bin_names
from benchkit.run.resolve import RunConfig
from benchkit.run.runner import run
from benchkit.store.results import load_results


def test_bins_are_lamas():
    """LaMa's evaluator: edges linspace(0, 1, bins + 1), searchsorted(side="right") - 1, 1.0 in the last bin."""
    areas = [0.0, 0.05, 0.1, 0.1999, 0.2, 0.55, 0.9999, 1.0]
    assert bin_index(areas, "lama").tolist() == [0, 0, 1, 1, 2, 5, 9, 9]
    assert bin_index(areas, "comodgan").tolist() == [0, 0, 0, 0, 1, 2, 4, 4]
    assert bin_names("lama")[:2] == ["0-10%", "10-20%"] and bin_names("lama")[-1] == "90-100%"
    assert bin_names("comodgan") == ["0-20%", "20-40%", "40-60%", "60-80%", "80-100%"]


class MeanHole(SetMetric):
    """A set metric with a hand-checkable value: the mean missing share of the set's images (at
    least two of them, as FID needs)."""

    name = "mean-hole"
    states = {"missing": "cat"}

    def update(self, batch):
        self.add("missing", (~batch.known).flatten(1).double().mean(1))

    def compute(self):
        values = self.state.get("missing")
        if values is None or len(values) < 2:
            raise ValueError("needs two images")
        return float(values.mean())


class Plugins:
    @hookimpl
    def register_metrics(self, register):
        register(MeanHole)


@pytest.mark.parametrize("shard_size", [None, 5])
def test_each_bin_is_scored_over_its_own_images(tmp_path, shard_size):
    registry = Registry(block_external=True, extra=[Plugins()])
    config = RunConfig(methods=["mean-fill"], masks=["mat-large"], metrics=["psnr", "mean-hole"], n_images=24,
                       bins="comodgan", shard_size=shard_size, out=tmp_path / "r")
    run(config, registry, show_progress=False)
    images = load_results(tmp_path / "r")
    sets = load_results(tmp_path / "r", level="set")
    whole = sets[sets.bin == "all"].iloc[0]
    assert whole["mean-hole"] == pytest.approx(images.missing_fraction.mean())
    index = bin_index(images.missing_fraction, "comodgan")
    for i, name in enumerate(bin_names("comodgan")):
        row = sets[sets.bin == name].iloc[0]
        inside = images.missing_fraction[index == i]
        assert row.n_images == len(inside)
        if len(inside) >= 2:
            assert row["mean-hole"] == pytest.approx(inside.mean())
        else:  # too few for the metric: NaN, shown as its count in the tables
            assert math.isnan(row["mean-hole"])
    assert sets[sets.bin != "all"].n_images.sum() == 24


def test_bins_print_a_table_per_bin_and_change_the_key(tmp_path, capsys):
    from benchkit.cli import main

    args = ["run", "--methods", "mean-fill", "--masks", "thick", "--metrics", "fid-fmnist", "--n-images", "16",
            "--out", str(tmp_path / "r")]
    assert main(args) == 0
    assert main(args + ["--bins", "lama"]) == 0  # a new key: the cell is redone with its states per bin
    out = capsys.readouterr().out
    assert "fid-fmnist on fashion-mnist-mini, mask thick, per hole-area bin" in out
    assert "finished cells reused" not in out
    table = [line for line in out.splitlines() if line.startswith("| method") and "0-10%" in line]
    assert table and "90-100% (n=" in table[-1]
    assert main(args + ["--bins", "lama"]) == 0
    assert "1 finished cells reused" in capsys.readouterr().out


def test_metrics_added_later_are_binned_too(tmp_path):
    from benchkit.cli import main

    out = str(tmp_path / "r")
    assert main(["run", "--methods", "mean-fill", "--masks", "mat-large", "--metrics", "psnr", "--n-images", "24",
                 "--bins", "comodgan", "--out", out]) == 0
    assert main(["score", out, "--metrics", "fid-fmnist"]) == 0
    sets = load_results(out, level="set")
    binned = sets[sets.bin != "all"]
    assert len(binned) == 5 and binned["fid-fmnist"].notna().sum() >= 2
    assert (binned.loc[binned.n_images < 2, "fid-fmnist"].isna()).all()

