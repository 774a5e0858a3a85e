"""Published models through the convention adapter: TorchScript files in both forms LaMa's
``bin/to_jit.py`` and its derivatives produce, made here with random weights."""
import json
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import benchkit
from benchkit.builtins.published.convention import Convention, symmetric_pad
from benchkit.cli import main


def _script(tmp_path, source: str, name: str):
    """Write a module's source and script it (TorchScript compiles from source files), save it."""
    module = tmp_path / f"{name}_src.py"
    module.write_text(textwrap.dedent(source))
    namespace: dict = {}
    exec(compile(module.read_text(), str(module), "exec"), namespace)  # noqa: S102  (the test's own model)
    torch.manual_seed(0)
    scripted = torch.jit.script(namespace["Model"]())
    path = tmp_path / f"{name}.pt"
    torch.jit.save(scripted, str(path))
    return path


TWO_INPUTS = """
import torch

class Model(torch.nn.Module):
    # LaMa's to_jit form: forward(image, mask), 1 = hole, image in [0, 1], output composited
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, image, mask):
        predicted = torch.sigmoid(self.conv(torch.cat([image * (1 - mask), mask], dim=1)))
        return mask * predicted + (1 - mask) * image
"""

ONE_INPUT = """
import torch

class Model(torch.nn.Module):
    # one 4-channel input, the raw output
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))
"""

MASK_ECHO = """
import torch

class Model(torch.nn.Module):
    # returns its mask input as the image: shows the polarity it was given
    def forward(self, image, mask):
        return mask.expand_as(image)
"""


def test_symmetric_padding_is_numpy_s_and_the_strategies_round_trip():
    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).view(2, 3, 5, 6)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (0, 3), (0, 2)), mode="symmetric")
    np.testing.assert_array_equal(symmetric_pad(x, 3, 2).numpy(), expected)
    images, known = torch.rand(2, 3, 21, 30), torch.rand(2, 1, 21, 30) > 0.5
    for convention in (Convention(multiple=8), Convention(multiple=8, strategy="resize")):
        image, mask = convention.to_model(images * known, known)
        assert image.shape[-2:] == (24, 32) and mask.shape[-2:] == (24, 32)
        back = convention.from_model(image, images.shape)
        assert back.shape == images.shape
        if convention.strategy == "pad":  # the crop undoes the padding exactly
            torch.testing.assert_close(back, images * known, rtol=0, atol=0)
            torch.testing.assert_close(mask[..., :21, :30], (~known).float(), rtol=0, atol=0)
    image, mask = Convention(mask="known", scale="byte").to_model(images[:, :, :16, :16] * known[..., :16, :16],
                                                                  known[..., :16, :16])
    assert set(mask.unique().tolist()) <= {0.0, 255.0} and torch.equal(mask > 0, known[..., :16, :16])


@pytest.mark.parametrize("source", [TWO_INPUTS, ONE_INPUT])
def test_both_torchscript_forms_run_composite_and_batch_alike(tmp_path, capsys, source):
    path = _script(tmp_path, source, "model")
    run = ["run", "--methods", f"torchscript:{path}[trusted=true,name=ts],mean-fill", "--datasets",
           "fashion-mnist-mini", "--masks", "center,thick",
           "--n-images", "5", "--metrics", "psnr,known-l1", "--out", str(tmp_path / "R")]
    photos = tmp_path / "photos"  # the models are colour models: colour photographs of a side no multiple of 8
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    run[run.index("--datasets") + 1] = f"folder:{photos}[size=20]"
    assert main(run) == 0, capsys.readouterr().err
    df = benchkit.load_results(tmp_path / "R")
    assert set(df.method) == {"ts", "mean-fill"}
    assert np.isfinite(df.psnr).all()
    ts = df[df.method == "ts"]
    if source is TWO_INPUTS:  # composited by the model: the known pixels come back as they went in
        assert (ts["known-l1"] < 1e-6).all()
    # one image alone equals the same image in a batch
    manifest = json.loads((tmp_path / "R" / "manifest.json").read_text())
    assert any(k.startswith("method torchscript") for k in manifest["plugins"])
    alone = ["--batch-size", "1", "--out", str(tmp_path / "B")]
    assert main(run[:-2] + alone) == 0
    pairs = benchkit.load_results(tmp_path / "B").set_index(["mask", "method", "image_id"]).psnr
    np.testing.assert_allclose(pairs.sort_index().to_numpy(),
                               df.set_index(["mask", "method", "image_id"]).psnr.sort_index().to_numpy(), rtol=1e-6)


def test_the_mask_reaches_the_model_in_its_polarity_and_the_file_is_in_the_key(tmp_path, capsys):
    path = _script(tmp_path, MASK_ECHO, "echo")
    from benchkit.builtins.published.torchscript import TorchScriptInpainter

    images, known = torch.rand(1, 3, 16, 16), torch.rand(1, 1, 16, 16) > 0.5
    for polarity, expected in (("hole", ~known), ("known", known)):
        method = TorchScriptInpainter(str(path), trusted=True, mask=polarity)
        method.load(torch.device("cpu"))
        out = method.inpaint(images * known, known)
        torch.testing.assert_close(out, expected.float().expand(-1, 3, -1, -1))
    run = ["run", "--methods", f"torchscript:{path}[trusted=true]", "--masks", "center", "--n-images", "2",
           "--metrics", "psnr", "--out", str(tmp_path / "R")]
    assert main(run) == 0
    cell = json.loads(next((tmp_path / "R" / "cells").glob("*.json")).read_text())
    import hashlib

    assert cell["settings"]["input_files"] == {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}


def test_an_untrusted_or_broken_file_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    path = _script(tmp_path, TWO_INPUTS, "model")
    for spec, message in ((f"torchscript:{path}", "is TorchScript, a program that runs when it is loaded"),
                          (f"torchscript:{tmp_path / 'none.pt'}[trusted=true]", "does not exist"),
                          (f"torchscript:{tmp_path / 'model_src.py'}[trusted=true]", "is not a TorchScript file")):
        assert main(["run", "--methods", spec, "--masks", "center", "--n-images", "2", "--out",
                     str(tmp_path / "R")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
        assert not (tmp_path / "R").exists()


def _iopaint_window(box, height, width, margin):
    """IOPaint's ``_crop_box``, written out as its source reads (iopaint/model/base.py)."""
    box_h, box_w = box[3] - box[1], box[2] - box[0]
    cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    w, h = box_w + margin * 2, box_h + margin * 2
    _l, _r, _t, _b = cx - w // 2, cx + w // 2, cy - h // 2, cy + h // 2
    left, right, top, bottom = max(_l, 0), min(_r, width), max(_t, 0), min(_b, height)
    if _l < 0:
        right += abs(_l)
    if _r > width:
        left -= _r - width
    if _t < 0:
        bottom += abs(_t)
    if _b > height:
        top -= _b - height
    return max(left, 0), max(top, 0), min(right, width), min(bottom, height)


def test_the_crop_strategy_runs_a_window_around_each_hole_as_iopaint_does(tmp_path):
    from benchkit.builtins.published.cropping import hole_boxes, window
    from benchkit.builtins.published.torchscript import TorchScriptInpainter

    rng = np.random.default_rng(3)
    for _ in range(200):
        height, width = rng.integers(8, 60, size=2)
        box = tuple(int(v) for v in (*sorted(rng.integers(0, width, 2)), *sorted(rng.integers(0, height, 2))))
        box = (box[0], box[2], box[1] + 1, box[3] + 1)
        margin = int(rng.integers(1, 40))
        assert window(box, height, width, margin) == _iopaint_window(box, height, width, margin)
    known = torch.ones(1, 1, 40, 50, dtype=torch.bool)
    known[..., 3:9, 5:12] = False  # two holes: two windows
    known[..., 30:36, 40:47] = False
    assert sorted(hole_boxes((~known[0, 0]).numpy())) == [(5, 3, 12, 9), (40, 30, 47, 36)]
    path = _script(tmp_path, ONE_INPUT, "model")
    method = TorchScriptInpainter(str(path), trusted=True, strategy="crop", margin=4)
    method.load(torch.device("cpu"))
    images = torch.rand(1, 3, 40, 50) * known
    got = method.inpaint(images, known)
    expected = images.clone()  # outside the windows: the input
    for box in ((5, 3, 12, 9), (40, 30, 47, 36)):
        left, top, right, bottom = _iopaint_window(box, 40, 50, 4)
        part = (slice(None), slice(None), slice(top, bottom), slice(left, right))
        expected[part] = _padded_run(method, images[part], known[part])
    torch.testing.assert_close(got, expected)


def _padded_run(method, image, known):
    """The window padded symmetrically to a multiple of 8, the model, cropped back."""
    h, w = image.shape[-2:]
    pad = ((0, 0), (0, 0), (0, -h % 8), (0, -w % 8))
    x = torch.from_numpy(np.pad(image.numpy(), pad, mode="symmetric"))
    m = torch.from_numpy(np.pad((~known).float().numpy(), pad, mode="symmetric"))
    with torch.no_grad():
        return method.model(torch.cat([x * (1 - m), m], dim=1))[..., :h, :w]


def _iopaint_padded(image: np.ndarray, mod: int, square: bool, min_size: int) -> np.ndarray:
    """IOPaint's ``pad_img_to_modulo`` (iopaint/helper.py) on an H x W x C array, written out."""
    height, width = image.shape[:2]
    out_height, out_width = -(-height // mod) * mod, -(-width // mod) * mod
    if min_size:
        out_height, out_width = max(min_size, out_height), max(min_size, out_width)
    if square:
        out_height = out_width = max(out_height, out_width)
    return np.pad(image, ((0, out_height - height), (0, out_width - width), (0, 0)), mode="symmetric")


def test_minimum_and_square_sizes_pad_as_iopaint_s_pad_img_to_modulo():
    rng = np.random.default_rng(5)
    for height, width, mod, square, minimum in ((5, 9, 8, True, 0), (13, 17, 8, False, 32), (3, 4, 4, True, 16),
                                                (21, 30, 1, True, 0)):
        images = torch.from_numpy(rng.random((1, 3, height, width), dtype=np.float32))
        known = torch.ones(1, 1, height, width, dtype=torch.bool)
        image, _ = Convention(multiple=mod, square=square, minimum=minimum).to_model(images, known)
        expected = _iopaint_padded(images[0].permute(1, 2, 0).numpy(), mod, square, minimum)
        np.testing.assert_array_equal(image[0].permute(1, 2, 0).numpy(), expected)
