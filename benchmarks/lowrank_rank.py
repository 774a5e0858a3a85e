"""Choose the ``lowrank`` method's rank and beta on *training* images (never the test split).

    python benchmarks/lowrank_rank.py [--n 128]

Prints the mean PSNR (dB) of the composite on the first N images of fashion-mnist-mini's train
split for each (rank, beta) and paper mask, and the best setting averaged over masks.
"""
import argparse
import itertools

import torch

from benchkit.builtins.methods.lowrank import tnnr_complete
from benchkit.builtins.metrics.pixel import psnr
from benchkit.masking import make_masks
from benchkit.plugin.registry import Registry

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=128)
args = parser.parse_args()
registry = Registry(block_external=True)
images = registry.create("dataset", "fashion-mnist-mini").images("train", limit=args.n)
masks = {name: make_masks(registry.create("mask", name), "validation", name, list(range(args.n)), 32, 32, 0)
         for name in ("center", "pattern", "random", "half")}
scores = {}
for rank, beta in itertools.product((1, 2, 3, 4, 6, 8), (0.05, 0.2, 1.0)):
    row = []
    for known in masks.values():
        out = tnnr_complete(images * known, known.expand_as(images), rank=rank, beta=beta).clamp(0, 1)
        row.append(psnr(torch.where(known, images, out.float()), images).mean().item())
    scores[(rank, beta)] = row
    print(f"rank {rank} beta {beta:<5}", "  ".join(f"{n} {v:6.2f}" for n, v in zip(masks, row)), flush=True)
best = max(scores, key=lambda k: sum(scores[k]))
print(f"best on validation (mean over masks): rank {best[0]}, beta {best[1]}")
