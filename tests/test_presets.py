"""benchkit run --preset yeh2017: the paper's Table 1 layout, its numbers, and skipped datasets."""
import re

import numpy as np
import pytest
from scipy.io import savemat

from benchkit import load_results
from benchkit.cli import main


@pytest.fixture(autouse=True)
def no_data(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCHKIT_DATA", raising=False)


def _table_rows(out: str) -> dict[str, list[str]]:
    """The body rows of the printed Table 1 layout, by mask."""
    block = out[out.index("Table 1"):]
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in ("center", "pattern", "random", "half"):
            rows[cells[0]] = cells[1:]
    return rows


def test_preset_with_the_embedded_stand_in_prints_table1(tmp_path, capsys):
    out_dir = tmp_path / "run"
    code = main(["run", "--preset", "yeh2017", "--datasets", "fashion-mnist-mini", "--n-images", "4",
                 "-o", "gan.iterations=3", "--out", str(out_dir)])
    assert code == 0
    out = capsys.readouterr().out
    header = [line for line in out.splitlines() if line.startswith("| mask")][-1]
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "mask", "fashion-mnist-mini (benchkit)", "CelebA (paper)", "SVHN (paper)", "Cars (paper)"]
    rows = _table_rows(out)
    assert rows["center"][1:] == ["21.3/19.4", "22.3/19.0", "14.1/13.5"]  # the paper's Table 1
    assert rows["half"][1:] == ["15.5/13.7", "19.1/14.6", "12.6/11.1"]
    df = load_results(out_dir)
    for mask in ("center", "pattern", "random", "half"):
        ours = df[(df["mask"] == mask) & (df.method == "gan[iterations=3]")].psnr.mean()  # the row of gan
        ce = rows[mask][0].split("/")[0]
        assert rows[mask][0].split("/")[1] == f"{ours:.2f}"
        if not (df.method == "ce").any():  # no CE checkpoint where the test runs: shown as missing
            assert ce == "—"


def _svhn_only(tmp_path):
    """A data folder holding only an SVHN test file of two flat images."""
    svhn = tmp_path / "data" / "svhn"
    svhn.mkdir(parents=True)
    savemat(svhn / "test_32x32.mat", {"X": np.full((32, 32, 3, 2), 90, np.uint8), "y": np.ones((2, 1))})


def test_preset_skips_datasets_not_on_disk(tmp_path, capsys):
    _svhn_only(tmp_path)
    code = main(["run", "--preset", "yeh2017", "--methods", "mean-fill", "--masks", "center",
                 "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert code == 0
    out = capsys.readouterr().out
    assert "note: skipped dataset 'celeba'" in out and "benchkit data download celeba" in out
    assert "note: skipped dataset 'cars'" in out
    header = [line for line in out.splitlines() if line.startswith("| mask")][-1]
    assert header.index("svhn (benchkit)") < header.index("SVHN (paper)") < header.index("CelebA (paper)")
    assert set(load_results(tmp_path / "run").dataset) == {"svhn"}


def test_preset_with_no_dataset_on_disk_fails_in_one_line(tmp_path, capsys):
    code = main(["run", "--preset", "yeh2017", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "benchkit data download svhn" in err
    assert not (tmp_path / "run").exists(), "nothing written"


def test_list_shows_the_preset(capsys):
    assert main(["list"]) == 0
    assert re.search(r"^preset +yeh2017 ", capsys.readouterr().out, re.M)


def test_preset_skips_a_named_method_without_a_model_for_the_dataset(tmp_path, capsys):
    _svhn_only(tmp_path)
    code = main(["run", "--preset", "yeh2017", "--methods", "gan,mean-fill", "--masks", "center",
                 "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0 and "skipped method 'gan' on 'svhn'" in out and "benchkit train gan --dataset svhn" in out
    assert set(load_results(tmp_path / "run").method) == {"mean-fill"}
