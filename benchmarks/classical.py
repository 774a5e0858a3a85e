"""Time every classical method on the embedded default and print images per second.

    python benchmarks/classical.py [--n 512] [--batch-size 64] [--methods tv,lowrank,...]

For each method and paper mask it inpaints the first N test images of fashion-mnist-mini in
batches (setup included, as in `benchkit run`) and prints images/second and the mean PSNR of the
composite. `nn` is timed against the 10,000 embedded training images.
"""
import argparse
import time

import torch

from benchkit.builtins.metrics.pixel import psnr
from benchkit.masking import make_masks
from benchkit.plugin.interfaces import MethodContext
from benchkit.plugin.registry import Registry

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=512)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--methods", default="mean-fill,tv,lowrank,nn,patchmatch,biharmonic,telea")
args = parser.parse_args()

registry = Registry(block_external=True)
dataset = registry.create("dataset", "fashion-mnist-mini")
images = dataset.images("test", limit=args.n)
train = dataset.images("train")
print(f"{args.n} images {tuple(images.shape[1:])}, batch {args.batch_size}, torch threads {torch.get_num_threads()}")
print(f"{'method':<12}{'mask':<9}{'img/s':>9}{'psnr dB':>9}")
for name in args.methods.split(","):
    for mask in ("center", "pattern", "random", "half"):
        known = make_masks(registry.create("mask", mask), "fashion-mnist-mini", mask, list(range(args.n)), 32, 32, 0)
        method = registry.create("method", name)
        start = time.perf_counter()
        method.setup(MethodContext("fashion-mnist-mini", torch.device("cpu"), (1, 32, 32), train_images=train))
        outs = [method.inpaint(images[i:i + args.batch_size] * known[i:i + args.batch_size],
                               known[i:i + args.batch_size]) for i in range(0, args.n, args.batch_size)]
        seconds = time.perf_counter() - start
        score = psnr(torch.where(known, images, torch.cat(outs)), images).mean().item()
        print(f"{name:<12}{mask:<9}{args.n / seconds:9.1f}{score:9.2f}", flush=True)
