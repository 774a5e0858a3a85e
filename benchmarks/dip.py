"""Deep Image Prior: speed of the batched fit, and the choice of its default iteration count.

    python benchmarks/dip.py speed [--iterations 50] [--device cpu]
    python benchmarks/dip.py sweep [--n 16] [--iterations 250,500,1000]

``speed``: images per second of ``dip``'s fit at 32 x 32 px (gray, default width) for batches of 1,
16 and 64 networks trained together (``torch.func.vmap``), against the same images fitted one
``nn.Module`` at a time with its own Adam (the paper notebook's loop), in the same run; each for
``--iterations`` steps.

``sweep``: PSNR of the fill on the first N *training* images of the embedded Fashion-MNIST subset
(not the test images benchkit reports on) under the ``center`` and ``random`` masks, for each
iteration count; DIP overfits the noise of its input with too many steps, so the best count is the
default.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def speed(args) -> None:
    from test_dip import one_at_a_time  # the notebook's loop: one nn.Module, its own Adam

    from benchkit.builtins.methods.dip import fit, width_for

    device = torch.device(args.device)
    torch.manual_seed(0)
    width = width_for(32)
    images = torch.rand(64, 1, 32, 32, device=device)
    known = torch.rand(64, 1, 32, 32, device=device) > 0.5
    fit(images[:2], known[:2], [0, 1], 2, 0.01, 0.03, width)  # first-call costs out of the timings
    print(f"{args.iterations} iterations, 32x32 gray, width {width}, {torch.get_num_threads()} threads, {device}\n")
    print("| batch | batched (images/s) | one network at a time (images/s) | speed-up |\n|---|---|---|---|")
    for batch in (1, 16, 64):
        started = time.perf_counter()
        fit(images[:batch], known[:batch], list(range(batch)), args.iterations, 0.01, 0.03, width)
        batched = batch / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(batch):
            one_at_a_time(images[i], known[i].float(), i, args.iterations, 0.01, 0.03, width)
        alone = batch / (time.perf_counter() - started)
        print(f"| {batch} | {batched:.3f} | {alone:.3f} | {batched / alone:.1f}x |")


def sweep(args) -> None:
    from benchkit.builtins.methods.dip import fit, width_for
    from benchkit.builtins.metrics.pixel import psnr
    from benchkit.masking import make_masks
    from benchkit.plugin.registry import Registry

    registry = Registry(block_external=True)
    images = registry.create("dataset", "fashion-mnist-mini").images("train", limit=args.n)
    counts = [int(c) for c in args.iterations.split(",")]
    print(f"PSNR (dB) of dip's composite on the first {args.n} training images of fashion-mnist-mini\n")
    print("| mask | " + " | ".join(f"{c} its" for c in counts) + " |\n|---|" + "---|" * len(counts))
    for mask in ("center", "random"):
        known = make_masks(registry.create("mask", mask), "sweep", mask, list(range(args.n)), 32, 32, 0)
        row = []
        for count in counts:
            fill = fit(images, known, list(range(args.n)), count, 0.01, 0.03, width_for(32))
            composite = torch.where(known, images, fill)
            row.append(f"{psnr(composite, images).mean():.2f}")
        print(f"| {mask} | " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--iterations", type=int, default=50)
    s.add_argument("--device", default="cpu")
    w = sub.add_parser("sweep")
    w.add_argument("--n", type=int, default=16)
    w.add_argument("--iterations", default="250,500,1000")
    args = parser.parse_args()
    speed(args) if args.what == "speed" else sweep(args)


if __name__ == "__main__":
    main()
