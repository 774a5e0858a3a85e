"""Issue 14's GPU figures in one run, printed as one markdown table (run by ``benchmarks/gpu_check.sh``).

    python benchmarks/gpu_check.py [--device cuda] [--quick]

Rows: DCGAN and Context Encoder training speed (32 px, batch 64, images/s over one epoch of the
embedded 10,000 training images, after a warm-up epoch); ``gan`` latent-search speed (images/s
at the paper's 1500 iterations, from timed steps after the CUDA graph's capture; once eagerly for
comparison) at batches 64, 512 and 4096, fp32 and bf16, at
32 px with the shipped model and at 64x64x3 with a random-weight DCGAN of that size; and
``benchkit run --methods gan --n-images 512`` (4 masks, default ``--batch-size auto``) wall time,
split into the method's own seconds and the rest (masks, blending, metrics, writing).
``--quick`` shrinks everything so the script can be tried on a CPU in about a minute.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchkit.builtins import SHIPPED_MODELS
from benchkit.builtins.datasets.basic import FashionMNISTMini
from benchkit.builtins.methods.gan import latent_search, load_gan
from benchkit.builtins.nets.dcgan import Discriminator, Generator
from benchkit.builtins.training.loop import TrainConfig
from benchkit.checkpoints import find_checkpoint


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_rate(kind: str, images: torch.Tensor, device: str, epochs: int) -> float:
    """Images per second of the last of ``epochs`` epochs of ``benchkit train KIND`` (32 px, batch 64)."""
    from benchkit.plugin.registry import Registry

    registry = Registry()
    masks = {name: registry.create("mask", name) for name in ("center", "random")} if kind == "ce" else {}
    with tempfile.TemporaryDirectory() as out:
        seen = []
        for epoch in range(1, epochs + 1):  # one epoch per call: the rate of the last one, warmed up
            trainer = registry.create("trainer", kind, {})
            config = TrainConfig(dataset="gpu-check", epochs=epoch, batch_size=64, device=device)
            path = trainer.train(images, config, Path(out), "gpu_check", masks)
            info = json.loads(path.with_suffix(".json").read_text())
            seen.append((info["images_seen"], info["wall_seconds"]))
    (images_before, wall_before), (images_after, wall_after) = seen[-2] if len(seen) > 1 else (0, 0.0), seen[-1]
    return (images_after - images_before) / (wall_after - wall_before)


def search_rate(gen, disc, batch: int, size: int, channels: int, device: torch.device, precision: str,
                steps: int, graph: bool = True) -> float:
    """Images per second of the latent search at 1500 iterations, from the time ``steps`` more
    steps add to a short search (so a CUDA graph's warm-up and capture are not counted)."""
    images = torch.rand(batch, channels, size, size, device=device)
    known = torch.rand(batch, 1, size, size, device=device) > 0.5
    seconds = []
    for iterations in (10, 10 + steps):
        sync(device)
        start = time.perf_counter()
        latent_search(gen, disc, images, known, iterations=iterations, precision=precision, graph=graph)
        sync(device)
        seconds.append(time.perf_counter() - start)
    return batch / ((seconds[1] - seconds[0]) / steps * 1500)


def blend_seconds(n: int, device: torch.device) -> float:
    """Seconds to Poisson-blend ``n`` 32 x 32 gray images (centre holes) on ``device``, after one warm-up."""
    from benchkit.builtins.methods.blending import poisson_blend

    guide, target = torch.rand(n, 1, 32, 32, device=device), torch.rand(n, 1, 32, 32, device=device)
    known = torch.ones(n, 1, 32, 32, dtype=torch.bool, device=device)
    known[:, :, 8:24, 8:24] = False
    cache: dict = {}
    poisson_blend(guide, target, known, cache)
    sync(device)
    start = time.perf_counter()
    poisson_blend(guide, target, known, cache)
    sync(device)
    return time.perf_counter() - start


def run_rate(device: str, n_images: int, quick: bool) -> tuple[float, float]:
    """Wall seconds of ``benchkit run --methods gan`` on 4 masks, and the method's own seconds."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-c", "from benchkit.cli import main; raise SystemExit(main())", "run",
                   "--methods", "gan", "--n-images", str(n_images), "--device", device, "--out", out]
        if quick:
            command += ["-o", "gan.iterations=5"]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        cells = [json.loads(p.read_text()) for p in (Path(out) / "cells").glob("*.json")]
        return wall, sum(c["seconds"] for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to try the script on a CPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []

    def row(what: str, value: float, unit: str) -> None:
        rows.append((what, value, unit))
        print(f"| {what} | {value:,.2f} | {unit} |", flush=True)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}\n\n| what | value | unit |\n|---|---|---|", flush=True)
    images = FashionMNISTMini().images_uint8("train")[: 640 if args.quick else None]
    for kind in ("gan", "ce"):
        row(f"train {kind}, 32 px, batch 64", training_rate(kind, images, args.device, 1 if args.quick else 2),
            "images/s")
    gen, disc, _ = load_gan(find_checkpoint("gan", "fashion-mnist", None, SHIPPED_MODELS), device)
    steps = 5 if args.quick else 50
    batches = (4, 8) if args.quick else (64, 512, 4096)
    row(f"latent search 32 px, fp32, batch {batches[0]}, eager (no CUDA graph)",
        search_rate(gen, disc, batches[0], 32, 1, device, "fp32", steps, graph=False), "images/s at 1500 its")
    for precision in ("fp32", "bf16"):
        for batch in batches:
            row(f"latent search 32 px, {precision}, batch {batch}",
                search_rate(gen, disc, batch, 32, 1, device, precision, steps), "images/s at 1500 its")
    big_gen = Generator(64, 3).to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
    big_disc = Discriminator(64, 3).to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
    for batch in ((4,) if args.quick else (512, 1024)):
        row(f"latent search 64x64x3, bf16, batch {batch}",
            search_rate(big_gen, big_disc, batch, 64, 3, device, "bf16", steps), "images/s at 1500 its")
    n = 8 if args.quick else 512
    row(f"Poisson blending, {n} images of 32 px", blend_seconds(n, device), "s")
    wall, method = run_rate(args.device, n, args.quick)
    row(f"benchkit run --methods gan, {n} images x 4 masks, wall", wall, "s")
    row("  of which gan's own time (search and blending)", method, "s")
    row("  of which the rest (start-up, masks, metrics, writing)", wall - method, "s")


if __name__ == "__main__":
    main()
