"""RePaint: UNet evaluations per image, speed and quality at the paper's and cheaper settings.

    python benchmarks/repaint.py [--n 64] [--masks center,thick] [--device cpu] [--out results/repaint-bench]

For each setting (steps, jump length, resamplings), from the paper's (250, 10, 10) down to plain
sampling, prints the UNet evaluations per image of RePaint's jump schedule, then runs
``benchkit run --methods repaint[...],...`` on the first N embedded test images with PSNR and
fid-fmnist, and prints ``benchkit report``'s tables (the seconds per image among them).
"""
from __future__ import annotations

import argparse

SETTINGS = [(250, 10, 10), (100, 10, 5), (50, 5, 3), (50, 5, 1), (25, 5, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--masks", default="center,thick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="results/repaint-bench")
    args = parser.parse_args()
    from benchkit.builtins.methods.repaint import jump_schedule
    from benchkit.cli import main as benchkit

    print("| steps | jump length | resamplings | UNet evaluations per image |\n|---|---|---|---|")
    specs = []
    for steps, jump, resample in SETTINGS:
        schedule = jump_schedule(steps, jump, resample)
        evaluations = sum(b < a for a, b in zip(schedule[:-1], schedule[1:]))
        print(f"| {steps} | {jump} | {resample} | {evaluations} |")
        specs.append(f"repaint[steps={steps},jump_length={jump},resamplings={resample}]")
    print()
    benchkit(["run", "--methods", ",".join(specs), "--masks", args.masks, "--metrics", "psnr,fid-fmnist",
              "--n-images", str(args.n), "--device", args.device, "--out", args.out, "--format", "csv"])
    benchkit(["report", args.out])  # the tables, seconds per image among them


if __name__ == "__main__":
    main()
