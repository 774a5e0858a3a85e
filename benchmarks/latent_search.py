"""Speed of the ``gan`` method's latent search, in one run.

    python benchmarks/latent_search.py [--device cpu] [--iterations 20] [--models-dir DIR]

Prints, for batch sizes 1 to 256: milliseconds per Adam step, images per second at the paper's
1500 iterations (extrapolated from ``--iterations`` timed steps after 3 warm-up steps), achieved
GFLOP/s (FLOPs of one forward + backward step counted by torch's FlopCounterMode) and that as a
fraction of this machine's fp32 matrix-multiply GFLOP/s measured at the start. It then times the
straightforward loop of public ports (one image at a time, generator and discriminator weights
still requiring gradients) and bf16 autocast.
"""
import argparse
import time

import torch

from benchkit.builtins import SHIPPED_MODELS
from benchkit.builtins.methods.gan import latent_search, load_gan
from benchkit.checkpoints import find_checkpoint

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
parser.add_argument("--iterations", type=int, default=20)
parser.add_argument("--batches", default="1,4,16,64,256")
parser.add_argument("--models-dir")
args = parser.parse_args()
device = torch.device(args.device)


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(size=2048, repeats=5, trials=7) -> float:
    """Best of several timings of a square fp32 matrix product, in GFLOP/s (a stable ceiling)."""
    a = torch.randn(size, size, device=device)
    for _ in range(3):
        a @ a
    best = 0.0
    for _ in range(trials):
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            a @ a
        sync()
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def step_flops(gen, disc, batch=8) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    z = (torch.rand(batch, gen.nz, device=device) * 2 - 1).requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        fake = gen(z)
        (fake.abs().sum() + disc(fake).sum()).backward()
    return counter.get_total_flops() / batch


def seconds_per_step(gen, disc, batch, precision="fp32") -> float:
    images = torch.rand(batch, 1, gen.size, gen.size, device=device)
    known = torch.rand(batch, 1, gen.size, gen.size, device=device) > 0.5
    latent_search(gen, disc, images, known, iterations=3, precision=precision)
    sync()
    start = time.perf_counter()
    latent_search(gen, disc, images, known, iterations=args.iterations, precision=precision)
    sync()
    return (time.perf_counter() - start) / args.iterations


gen, disc, info = load_gan(find_checkpoint("gan", "fashion-mnist", args.models_dir, SHIPPED_MODELS), device)
peak = matmul_peak()
flops = step_flops(gen, disc)
print(f"device {device}, torch threads {torch.get_num_threads()}, model {info['size']}px width {info['width']}")
print(f"fp32 matmul peak: {peak:.1f} GFLOP/s; one step: {flops / 1e6:.1f} MFLOP per image")
print(f"{'batch':>6}{'ms/step':>10}{'img/s@1500':>12}{'GFLOP/s':>9}{'of peak':>9}")
rates = {}
for batch in map(int, args.batches.split(",")):
    seconds = seconds_per_step(gen, disc, batch)
    rates[batch] = batch / (seconds * 1500)
    gflops = flops * batch / seconds / 1e9
    print(f"{batch:>6}{seconds * 1e3:>10.1f}{rates[batch]:>12.3f}{gflops:>9.1f}{gflops / peak:>9.0%}", flush=True)

naive_gen, naive_disc, _ = load_gan(find_checkpoint("gan", "fashion-mnist", args.models_dir, SHIPPED_MODELS), device)
naive_gen.requires_grad_(True), naive_disc.requires_grad_(True)  # public ports leave weights trainable
naive = 1 / (seconds_per_step(naive_gen, naive_disc, 1) * 1500)
best = max(rates, key=rates.get)
print(f"one image at a time, weights trainable (public ports): {naive:.3f} img/s; "
      f"batched (batch {best}) is {rates[best] / naive:.1f}x faster")
print(f"fp32 matmul peak measured again at the end: {matmul_peak():.1f} GFLOP/s")
for batch in (64,):
    seconds = seconds_per_step(gen, disc, batch, precision="bf16")
    print(f"bf16 autocast, batch {batch}: {seconds * 1e3:.1f} ms/step, {batch / (seconds * 1500):.3f} img/s "
          f"({batch / (seconds * 1500) / naive:.1f}x the one-at-a-time fp32 loop)")
