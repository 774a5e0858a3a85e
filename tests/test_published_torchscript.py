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
