"""``--batch-size auto`` (the default): each method's preferred batch for the device."""
from __future__ import annotations

import torch

import benchkit
from benchkit.builtins.methods.gan import GANInpainting
from benchkit.cli import main
from benchkit.plugin.registry import Registry
from benchkit.run.runner import RunConfig, run
from tests.conftest import SpyMethod


class SmallBatches(SpyMethod):
    name = "small-batches"

    def preferred_batch_size(self, device, image_shape):
        return 3 if device.type == "cpu" else 1000


class Extra:
    @benchkit.hookimpl
    def register_methods(self, register):
        register(SpyMethod)
        register(SmallBatches)


def batches(method: str, n: int, batch_size, tmp_path) -> list[int]:
    SpyMethod.calls.clear()
    registry = Registry(block_external=True, extra=[Extra()])
    run(RunConfig(methods=[method], masks=["center"], n_images=n, batch_size=batch_size, out=tmp_path / method,
                  force=True), registry, show_progress=False)
    return [len(images) for images, _ in SpyMethod.calls]


def test_auto_uses_each_methods_preferred_batch(tmp_path):
    assert batches("small-batches", 8, None, tmp_path) == [3, 3, 2]
    assert batches("spy", 70, None, tmp_path) == [64, 6]  # the default preference
    assert batches("small-batches", 8, 5, tmp_path) == [5, 3]  # a number overrides it


def test_gan_prefers_large_batches_on_a_gpu_only():
    gan = GANInpainting()
    assert gan.preferred_batch_size(torch.device("cpu"), (1, 32, 32)) == 64
    assert gan.preferred_batch_size(torch.device("cuda"), (1, 32, 32)) == 4096
    assert gan.preferred_batch_size(torch.device("cuda"), (3, 64, 64)) == 1024
    assert gan.preferred_batch_size(torch.device("cuda"), (3, 1024, 1024)) == 64


def test_bad_batch_sizes_are_one_line(tmp_path, capsys):
    for value in ("x", "0", "-3"):
        try:
            code = main(["run", "--methods", "mean-fill", "--batch-size", value, "--out", str(tmp_path / "r")])
        except SystemExit as exc:  # argparse refuses a value that is not a number
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and "batch-size" in err, (value, err)
    assert not (tmp_path / "r").exists()
