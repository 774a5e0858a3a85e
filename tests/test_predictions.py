"""`benchkit export` writes the exact inputs; `predictions:DIR` scores a folder of outputs
made elsewhere like any method, and refuses, in one line and before any write, what does not fit."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import benchkit
from benchkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
CELLS = ("fashion-mnist-mini__center", "fashion-mnist-mini__thick")


def export(tmp_path, layout="lama", name="E", *extra):
    out = tmp_path / name
    assert main(["export", "--datasets", "fashion-mnist-mini", "--masks", "center,thick", "--n-images", "12",
                 "--layout", layout, "--out", str(out), *extra]) == 0
    return out


@pytest.fixture
def predictions(tmp_path):
    """An export in the lama layout and OpenCV Telea's predictions of it, made by the example script."""
    pytest.importorskip("cv2")
    exported = export(tmp_path)
    out = tmp_path / "P"
    subprocess.run([sys.executable, str(ROOT / "examples" / "external_telea.py"), str(exported), str(out)],
                   check=True)
    return out


def run_predictions(tmp_path, folder, capsys, *extra):
    code = main(["run", "--methods", f"predictions:{folder}[name=ext]", "--masks", "center,thick", "--n-images", "12",
                 "--metrics", "psnr", "--out", str(tmp_path / "R"), *extra])
    return code, capsys.readouterr()


def test_export_is_byte_identical_hashed_and_refuses_a_non_empty_target(tmp_path, capsys):
    first, second = export(tmp_path, name="A"), export(tmp_path, name="B")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["layout"] == "lama" and manifest["seed"] == 0 and len(manifest["cells"]) == 2
    assert {c["mask"] for c in manifest["cells"]} == {"center", "thick"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((first / name).read_bytes()).hexdigest() == digest
    assert len(manifest["files"]) == 2 * 12 * 2  # image and mask per image, per mask
    assert main(["export", "--masks", "center", "--n-images", "2", "--out", str(first)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", "--masks", "center", "--n-images", "2", "--out", str(first), "--force"]) == 0
    assert len(json.loads((first / "manifest.json").read_text())["files"]) == 2 * 3  # benchkit layout: 3 files
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary folder left


def test_exported_inputs_are_what_benchkit_s_methods_see(tmp_path):
    """The masks and images of each layout equal those a run keeps beside its cells."""
    assert main(["run", "--methods", "mean-fill", "--masks", "center,thick", "--n-images", "12", "--metrics", "psnr",
                 "--out", str(tmp_path / "R")]) == 0
    for layout, mask_name, hole_is_white, masked in (("lama", "{}_mask000.png", True, None),
                                                      ("repaint", "gt_keep_mask/{}.png", False, "gt_masked/{}.png"),
                                                      ("benchkit", "known/{}.png", False, "input/{}.png")):
        out = export(tmp_path, layout, f"E-{layout}")
        truth_name = "{}.png" if layout == "lama" else "gt/{}.png"
        for mask in ("center", "thick"):
            kept = np.load(tmp_path / "R" / "cells" / f"fashion-mnist-mini__{mask}__mean-fill.npz")
            for i, image_id in enumerate(kept["ids"]):
                folder = out / f"fashion-mnist-mini__{mask}"
                stem = f"{image_id:05d}"
                white = np.asarray(Image.open(folder / mask_name.format(stem))) == 255
                np.testing.assert_array_equal(white, ~kept["known"][i, 0] if hole_is_white else kept["known"][i, 0])
                truth = np.asarray(Image.open(folder / truth_name.format(stem)))
                np.testing.assert_array_equal(truth, kept["truth"][i, 0])
                if masked:
                    np.testing.assert_array_equal(np.asarray(Image.open(folder / masked.format(stem))),
                                                  kept["truth"][i, 0] * kept["known"][i, 0])


def test_external_telea_equals_benchkit_s_telea_bit_for_bit(tmp_path, predictions):
    assert main(["run", "--methods", f"predictions:{predictions}[name=telea-ext],telea", "--masks", "center,thick",
                 "--n-images", "12", "--out", str(tmp_path / "R")]) == 0
    df = benchkit.load_results(tmp_path / "R").sort_values(["mask", "image_id"])
    ext, own = df[df.method == "telea-ext"], df[df.method == "telea"]
    assert len(ext) == len(own) == 24
    for metric in ("psnr", "ssim", "l1", "psnr_hole"):
        np.testing.assert_array_equal(ext[metric].to_numpy(), own[metric].to_numpy())


def _break(folder, how):
    cell = folder / CELLS[0]
    files = sorted(cell.glob("*.png"))
    if how == "missing":
        files[3].unlink()
    elif how == "extra":
        shutil.copy(files[0], cell / "99999_mask000.png")
    elif how == "wrong size":
        Image.open(files[1]).resize((16, 16)).save(files[1])
    elif how == "colour":
        gray = np.asarray(Image.open(files[2]))
        Image.fromarray(np.stack([gray, gray // 2, gray], -1).astype(np.uint8)).save(files[2])
    elif how == "corrupt":
        files[4].write_bytes(files[4].read_bytes()[:40])
    elif how == "seed":
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps(manifest | {"seed": 7}))
    elif how == "other images":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["cells"][0]["dataset_digest"] = "0" * 64
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif how == "no manifest":
        (folder / "manifest.json").unlink()


@pytest.mark.parametrize("how, message", [
    ("missing", "lacks 1 predictions"), ("extra", "match no exported image (fashion-mnist-mini__center/99999"),
    ("wrong size", "16x16, the images are 32x32"), ("colour", "has colour"), ("corrupt", "unreadable"),
    ("seed", "masks of seed 7"), ("no manifest", "has no manifest.json"),
])
def test_bad_prediction_folders_are_one_line_exit_2_and_nothing_written(tmp_path, predictions, capsys, how, message):
    _break(predictions, how)
    code, captured = run_predictions(tmp_path, predictions, capsys)
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], captured.err
    assert "Traceback" not in captured.err and not (tmp_path / "R").exists()


def test_a_folder_for_other_masks_or_images_is_refused(tmp_path, predictions, capsys):
    code, captured = run_predictions(tmp_path, predictions, capsys, "--masks", "center,random")
    assert code == 2 and "no predictions for fashion-mnist-mini/random" in captured.err
    code, captured = run_predictions(tmp_path, predictions, capsys, "--n-images", "20")
    assert code == 2 and "has no image 12" in captured.err


def test_resizing_is_explicit_and_recorded(tmp_path, predictions, capsys):
    for path in (predictions / CELLS[0]).glob("*.png"):
        Image.open(path).resize((64, 64), Image.Resampling.BICUBIC).save(path)
    assert run_predictions(tmp_path, predictions, capsys)[0] == 2
    assert main(["run", "--methods", f"predictions:{predictions}[resize=bicubic]", "--masks", "center,thick",
                 "--n-images", "12", "--metrics", "psnr", "--out", str(tmp_path / "R")]) == 0
    assert set(benchkit.load_results(tmp_path / "R").method) == {f"predictions:{predictions}[resize=bicubic]"}


def test_sixteen_bit_predictions_are_read_at_full_depth_and_jpeg_warns(tmp_path, predictions, capsys):
    import torch

    from benchkit.builtins.methods.predictions import Predictions
    from benchkit.imaging import decode_into

    path = sorted((predictions / CELLS[0]).glob("*.png"))[0]
    Image.fromarray(np.full((32, 32), 40000, dtype=np.uint16)).save(path)  # a 16-bit gray PNG
    reader = Predictions(str(predictions))
    reader.shape = (1, 32, 32)
    assert reader.read(path)[0, 0, 0] == 40000  # 8 bits would read 156 or 255
    decoded = torch.empty(1, 1, 32, 32)
    decode_into(decoded, 1, lambda row: reader.read(path))
    assert decoded[0, 0, 0, 0].item() == np.float32(40000 / 65535)  # no multiple of 1 / 255
    path2 = sorted((predictions / CELLS[1]).glob("*.png"))[0]
    Image.open(path2).save(path2.with_suffix(".jpg"), quality=95)
    path2.unlink()
    code, captured = run_predictions(tmp_path, predictions, capsys)
    assert code == 0 and "JPEG" in captured.err and "lossy" in captured.err


def test_the_raw_change_to_the_known_pixels_is_a_metric(tmp_path):
    """A method that maps each known pixel v to 0.8 v + 0.1 changes it by |0.1 - 0.2 v|: the mean of
    that over the known pixels is known-l1, 10 log10(1 / mean square) is known-psnr; mean-fill keeps
    the known pixels (known-l1 = 0)."""
    import torch

    from benchkit.plugin.interfaces import Method
    from benchkit.plugin.registry import Registry
    from benchkit.run.runner import RunConfig, run

    class Brightens(Method):
        name = "brightens"

        def inpaint(self, images, known):
            return torch.where(known, images * 0.8 + 0.1, torch.zeros_like(images)) + 0.1 * ~known

    class Plugins:
        @benchkit.hookimpl
        def register_methods(self, register):
            register(Brightens)

    registry = Registry(block_external=True, extra=[Plugins()])
    run(RunConfig(methods=["brightens", "mean-fill"], masks=["center"], n_images=6,
                  metrics=["known-l1", "known-psnr"], out=tmp_path / "R"), registry, show_progress=False)
    df = benchkit.load_results(tmp_path / "R")
    truth = benchkit.builtins.datasets.basic.FashionMNISTMini().images("test", limit=6).double()
    change = (truth * 0.8 + 0.1 - truth).abs()  # on the known pixels: center mask keeps the border
    known = torch.ones(6, 1, 32, 32, dtype=torch.bool)
    known[:, :, 8:24, 8:24] = False
    expected_l1 = change[known.expand_as(change)].view(6, -1).mean(1).numpy()
    expected_psnr = (10 * torch.log10(1 / change.pow(2)[known.expand_as(change)].view(6, -1).mean(1))).numpy()
    brightens = df[df.method == "brightens"].sort_values("image_id")
    np.testing.assert_allclose(brightens["known-l1"], expected_l1, rtol=1e-5)
    np.testing.assert_allclose(brightens["known-psnr"], expected_psnr, rtol=1e-5)
    assert (df[df.method == "mean-fill"]["known-l1"] == 0).all()
    code = main(["score", str(tmp_path / "R"), "--metrics", "known-l1"])  # kept composites have no raw output
    assert code == 2 and benchkit.load_results(tmp_path / "R")["known-l1"].equals(df["known-l1"])


def test_damaged_colour_pngs_are_found_without_decoding_them_twice(tmp_path):
    """Colour predictions are checked by their PNG chunks' CRCs and end marker (not decoded in the
    check): a file cut short, or with one byte of its image data changed, is still unreadable."""
    from benchkit.builtins.methods.predictions import Predictions

    rng = np.random.default_rng(0)
    path = tmp_path / "p.png"
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    method = Predictions(str(tmp_path))
    method.shape = (3, 40, 48)
    assert method._problem(path) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut in the middle of the image data
    assert method._problem(path).startswith("unreadable")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # one byte of the compressed pixels: the chunk's CRC no longer holds
    path.write_bytes(bytes(flipped))
    assert method._problem(path).startswith("unreadable")
