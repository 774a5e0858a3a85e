"""Choose the ``gan`` method's Adam learning rate, and measure PSNR against compute.

    python benchmarks/gan_tuning.py [--n 32] [--lrs 0.003,0.01,0.03,0.1] [--restarts 1,3] [--precisions fp32,bf16]

Uses the first N images of fashion-mnist-mini's *train* split (never the test split) with the
center and random masks, the shipped (or --models-dir) checkpoint and the paper's settings, and
prints the mean PSNR (dB) of the blended composite after 100, 300, 600, 1000 and 1500 iterations,
for each learning rate, number of restarts and precision (``bf16``: bfloat16 autocast).
"""
import argparse
import time

import torch

from benchkit.builtins import SHIPPED_MODELS
from benchkit.builtins.methods.blending import poisson_blend
from benchkit.builtins.methods.gan import latent_search, load_gan
from benchkit.builtins.metrics.pixel import psnr
from benchkit.checkpoints import find_checkpoint
from benchkit.masking import make_masks
from benchkit.plugin.registry import Registry

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=32)
parser.add_argument("--lrs", default="0.003,0.01,0.03,0.1")
parser.add_argument("--restarts", default="1")
parser.add_argument("--masks", default="center,random")
parser.add_argument("--iterations", type=int, default=1500)
parser.add_argument("--precisions", default="fp32")
parser.add_argument("--models-dir")
args = parser.parse_args()
steps = sorted({s for s in (100, 300, 600, 1000, 1500) if s < args.iterations} | {args.iterations})
registry = Registry(block_external=True)
images = registry.create("dataset", "fashion-mnist-mini").images("train", limit=args.n)
gen, disc, _ = load_gan(find_checkpoint("gan", "fashion-mnist", args.models_dir, SHIPPED_MODELS),
                        torch.device("cpu"))
print(f"{args.n} training images; PSNR (dB) of the blended composite after each number of iterations")
print(f"{'mask':<8}{'prec':>5}{'lr':>7}{'K':>3}" + "".join(f"{s:>8}" for s in steps) + f"{'s/img':>8}")
for mask in args.masks.split(","):
    known = make_masks(registry.create("mask", mask), "validation", mask, list(range(args.n)), 32, 32, 0)
    settings = [(int(k), float(lr), p) for k in args.restarts.split(",") for lr in args.lrs.split(",")
                for p in args.precisions.split(",")]
    for restarts, lr, precision in settings:
        scores = {}

        def record(step, z):
            if step in steps:
                with torch.no_grad():
                    fake = (gen(z).float() + 1) / 2
                # the best restart by context loss is chosen at the end; here use restart 0's
                # quality only when K = 1, else the mean over restarts of the best-so-far
                fake = fake.view(args.n, restarts, *fake.shape[1:])[:, 0]
                blended = poisson_blend(fake, images, known).clamp(0, 1)
                scores[step] = psnr(torch.where(known, images, blended), images).mean().item()

        start = time.perf_counter()
        fake, _ = latent_search(gen, disc, images, known, iterations=args.iterations, lr=lr,
                                restarts=restarts, callback=record if restarts == 1 else None,
                                precision=precision)
        seconds = (time.perf_counter() - start) / args.n
        # the final score is always that of the method's own output (best of K, at its precision)
        blended = poisson_blend((fake + 1) / 2, images, known).clamp(0, 1)
        scores[steps[-1]] = psnr(torch.where(known, images, blended), images).mean().item()
        print(f"{mask:<8}{precision:>5}{lr:>7g}{restarts:>3}"
              + "".join(f"{scores.get(s, float('nan')):8.2f}" for s in steps) + f"{seconds:8.2f}", flush=True)
