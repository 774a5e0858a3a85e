"""Every input a user can give gets exit 0, 1 or 2 and one line, never a traceback.

Each test names the item of the issue it covers; each failed on the code before the fix.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import TestPlugins
from PIL import Image

import benchkit
from benchkit.cli import main
from benchkit.plugin.registry import Registry


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return code, out, err


def one_line_error(capsys, *args, message=""):
    code, out, err = cli(capsys, *args)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.startswith("benchkit: error: ")]
    assert len(lines) == 1 and message in lines[0], err
    return lines[0]


def photos(folder, n=4, size=(20, 24), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture
def with_test_plugins(monkeypatch):
    """``benchkit`` commands see the misbehaving in-process plugins of conftest too."""
    import benchkit.plugin.registry

    class WithTestPlugins(Registry):
        def __init__(self, block_external=None, extra=()):
            super().__init__(True, [TestPlugins()])

    monkeypatch.setattr(benchkit.plugin.registry, "Registry", WithTestPlugins)  # the command line's registry


# 1. a run in which every cell fails: exit 1 and the failure table, not a traceback
def test_all_cells_failing_gives_exit_1_and_a_failure_table(tmp_path, capsys, monkeypatch, with_test_plugins):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "run", "--methods", "broken", "--datasets", "tiny", "--masks", "center,random",
                         "--metrics", "psnr", "--out", "r")
    assert code == 1
    assert "2 of 2 cells failed" in out and "| tiny      | center | broken   | RuntimeError: kaboom |" in out
    assert benchkit.load_results("r").empty and len(benchkit.store.results.failures("r")) == 2


# 1. (and 11 of issue 11) images too small for SSIM: exit 2 before anything is written
def test_ssim_on_small_images_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos(tmp_path / "p")
    one_line_error(capsys, "run", "--methods", "mean-fill", "--datasets", "folder:p", "-o", "folder.size=8",
                   message="metric 'ssim' needs images of at least 11x11 pixels")
    assert not (tmp_path / "results").exists()


# 2. 16-bit PNGs are read at full depth
def test_16_bit_gray_png_is_read_at_full_depth(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    levels = [1000, 30000, 65535]
    for i, level in enumerate(levels):
        Image.fromarray(np.full((16, 16), level, dtype=np.uint16)).save(folder / f"{i}.png")
    assert Image.open(folder / "0.png").mode.startswith("I")
    images = Registry(block_external=True).create("dataset", f"folder:{folder}", {"size": "16", "mode": "L"})
    values = images.images("test")[:, 0, 8, 8].double().numpy()
    np.testing.assert_allclose(values, np.array(levels) / 65535, atol=1e-6)


# 2. the tables say how many non-finite values they left out of a mean
def test_tables_report_non_finite_values_left_out():
    import pandas as pd

    from benchkit.report.tables import format_tables

    df = pd.DataFrame({"dataset": "d", "mask": "center", "method": "m", "image_id": [0, 1, 2],
                       "psnr": [20.0, float("inf"), 30.0]})
    from benchkit.store.results import Display, RunDisplay

    text = format_tables(df, ["psnr"], display=RunDisplay(metrics={"psnr": Display(True, "dB", 2)}))
    assert "| m        | 25.00 ± 63.53 |" in text  # mean and t-interval of 20 and 30 only
    assert "left out of the means: 1 infinite and 0 missing values" in text and "n = 2 images" in text
    assert format_tables(df, ["psnr"], "csv").splitlines()[1].endswith(",2")  # n counts what was averaged


# 3. a misspelled plugin in -o is an error; one that is not in the run gets a note
def test_option_for_an_unknown_plugin_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, "run", "--methods", "tv", "-o", "tvv.max_iter=1", message="did you mean 'tv'?")
    code, out, _ = cli(capsys, "run", "--methods", "mean-fill", "--masks", "center", "--n-images", "2",
                       "-o", "gan.iterations=3")
    assert code == 0 and "note: -o gan.iterations=... is not used: 'gan' is not in this run" in out


# 4. empty lists are errors, not "all"
@pytest.mark.parametrize("flag", ["--methods", "--masks", "--datasets", "--metrics"])
def test_empty_name_lists_are_refused(tmp_path, capsys, monkeypatch, flag):
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, "run", flag, ",", message=f"{flag} is empty")
    assert not (tmp_path / "results").exists()


# 5 and 7. masks follow image content, not paths; a changed folder redoes its cells with a note
def test_folder_masks_follow_content_and_changes_redo_cells(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "copy")
    args = ["--methods", "mean-fill", "--masks", "random,pattern", "--metrics", "psnr", "-o", "folder.size=16"]
    known = []
    for spec, out in (("folder:a", "r1"), ("folder:a/", "r2"), (f"folder:{tmp_path}/elsewhere/copy", "r3")):
        assert cli(capsys, "run", "--datasets", spec, "--out", out, *args)[0] == 0
        cells = sorted((tmp_path / out / "cells").glob("*.json"), key=lambda p: json.loads(p.read_text())["mask"])
        known.append([np.load(p.with_suffix(".npz"))["known"] for p in cells])
    for other in known[1:]:
        for a, b in zip(known[0], other):
            np.testing.assert_array_equal(a, b)
    before = benchkit.load_results("r1").sort_values(["mask", "image_id"]).psnr.to_numpy()
    photos(tmp_path / "a", seed=1)  # same names and sizes, new pixels
    code, out, _ = cli(capsys, "run", "--datasets", "folder:a", "--out", "r1", *args)
    assert code == 0 and out.count(f"note: dataset 'folder:{tmp_path / 'a'}[size=16]' changed since cell") == 2
    after = benchkit.load_results("r1").sort_values(["mask", "image_id"]).psnr.to_numpy()
    assert not np.allclose(before, after)
    manifest = json.loads((tmp_path / "r1" / "manifest.json").read_text())
    assert len(manifest["dataset_digests"][f"folder:{tmp_path / 'a'}[size=16]"]) == 64


# 6. corrupt manifests: --force replaces them; non-object manifests and ragged cells are one-line errors
def test_corrupt_manifest_and_cells(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = ["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "2", "--out", "r"]
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "manifest.json").write_text("{not json")
    one_line_error(capsys, *run, message="--force")
    assert cli(capsys, *run, "--force")[0] == 0
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["status"] == "finished"
    cell = next((tmp_path / "r" / "cells").glob("*.json"))
    record = json.loads(cell.read_text())
    record["rows"]["psnr"] = record["rows"]["psnr"][:1]
    cell.write_text(json.dumps(record))
    one_line_error(capsys, "report", "r", message="column 'psnr' has 1 values for 2 images")
    (tmp_path / "r" / "manifest.json").write_text("[1, 2]")
    one_line_error(capsys, "report", "r", message="not an object")


# 8. training on fewer images than one batch
def test_train_on_fewer_images_than_a_batch_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos(tmp_path / "p" / "train", n=3)
    photos(tmp_path / "p" / "test", n=1)
    one_line_error(capsys, "train", "gan", "--dataset", "folder:p", "--out", "m",
                   message="3 training images, fewer than --batch-size 64")
    assert not (tmp_path / "m").exists()


# 9. and 10. bad values of flags and options
@pytest.mark.parametrize("args,message", [
    (["--seed", "-1"], "--seed -1 is out of range"),
    (["--device", "meta"], "--device meta cannot run methods"),
    (["--device", "nonsense"], "bad --device 'nonsense'"),
    (["--datasets", "folder:p", "-o", "folder.size=0"], "folder.size='0' is out of range"),
    (["--methods", "tv", "-o", "tv.max_iter=-1"], "tv.max_iter='-1' is out of range"),
    (["--methods", "tv", "-o", "tv.tol=-1"], "tv.tol='-1' is out of range"),
    (["--methods", "lowrank", "-o", "lowrank.rank=0"], "lowrank.rank='0' is out of range"),
    (["--masks", "pattern", "-o", "pattern.blob=0"], "pattern.blob='0' is out of range"),
    (["--methods", "nn", "-o", "nn.chunk=0"], "nn.chunk='0' is out of range"),
    (["--methods", "gan", "-o", "gan.lr=nan"], "gan.lr='nan' must be a finite number"),
    (["--methods", "gan", "-o", "gan.window=4"], "needs value >= 1, odd"),
    (["--methods", "gan", "-o", "gan.precision=fp16"], "must be one of fp32, bf16"),
])
def test_out_of_range_values_exit_2_before_output(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    photos(tmp_path / "p")
    one_line_error(capsys, "run", *args, message=message)
    assert not (tmp_path / "results").exists()


# 9. an image over Pillow's decompression-bomb limit
def test_decompression_bomb_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos(tmp_path / "p", n=1, size=(100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    one_line_error(capsys, "run", "--methods", "mean-fill", "--datasets", "folder:p",
                   message="too large to open safely")


# 9. `benchkit report ... | head`
def test_report_into_a_closed_pipe(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("--methods", "mean-fill,tv", "--n-images", "4", "--metrics", "psnr,l1", "--out", "r")
    assert cli(capsys, "run", *args)[0] == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`head`) has already gone: every write fails with EPIPE
    result = subprocess.run([sys.executable, "-m", "benchkit.cli", "report", "r"], cwd=tmp_path,
                            stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    assert result.returncode == 0 and result.stderr == "", result.stderr


# 11. a deleted .npz is redone on the rerun, with a note
def test_deleted_pictures_are_redone(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "4", "--out", "r"]
    assert cli(capsys, *args)[0] == 0
    npz = next((tmp_path / "r" / "cells").glob("*.npz"))
    npz.unlink()
    code, out, _ = cli(capsys, *args)
    assert code == 0 and "lost its pictures" in out and npz.is_file()


# 12. file masks name the file; hidden sidecars are skipped; EXIF orientation; processor name
def test_file_mask_errors_name_the_file_and_sidecars_are_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos(tmp_path / "p")
    (tmp_path / "p" / "._00.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS sidecar
    masks = tmp_path / "m"
    masks.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / "a.png")  # nothing missing
    (masks / "._a.png").write_bytes(b"junk")
    one_line_error(capsys, "run", "--methods", "mean-fill", "--datasets", "folder:p", "--masks", "file:m",
                   message=f"leaves no missing pixel in image 0 of 'folder:{tmp_path / 'p'}' "
                   f"(mask file {masks / 'a.png'})")
    Image.fromarray(np.pad(np.full((4, 4), 255, np.uint8), 2)).save(masks / "a.png")
    code, _, _ = cli(capsys, "run", "--methods", "mean-fill", "--datasets", "folder:p", "--masks", "file:m",
                     "-o", "folder.size=16", "--out", "r")
    assert code == 0 and len(benchkit.load_results("r")) == 4
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["hardware"]["processor"]


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 20), np.uint8)
    pixels[:, :10] = 255  # left half white, as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    folder = tmp_path / "e"
    folder.mkdir()
    image.save(folder / "x.jpg", exif=exif.tobytes(), quality=100)
    from benchkit.builtins.datasets.basic import read_image

    shown = read_image((folder / "x.jpg").read_bytes(), folder / "x.jpg", "L", 10)[..., 0] / 255
    # displayed 10 wide x 20 high with the white half on top; the centred 10x10 square is white in
    # its top 5 rows (ignoring EXIF, the white half would be on the left instead)
    assert shown[:4].mean() > 0.9 and shown[6:].mean() < 0.1
