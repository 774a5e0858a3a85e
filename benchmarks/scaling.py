"""Wall time of one grid in-process, in a local process pool and on a Dask LocalCluster.

    python benchmarks/scaling.py [--n-images 512] [--workers 2] [--methods mean-fill,tv,lowrank,nn,biharmonic]

The grid is the classical methods x the four paper masks x the first N embedded test images. Each
configuration writes a fresh results folder; the script checks that every executor gives the same
per-image PSNR, then prints wall times and speed-ups (all measured in this one run), and the
per-shard overhead of Dask, measured on many tiny shards of mean-fill (which costs ~0 to compute).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchkit.plugin.registry import Registry
from benchkit.run.runner import RunConfig, run
from benchkit.store.results import load_results


def timed(config: RunConfig) -> float:
    started = time.perf_counter()
    outcome = run(config, Registry(block_external=True), show_progress=False)
    assert not outcome.failed, outcome.failed[0].error
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--methods", default="mean-fill,tv,lowrank,nn,biharmonic")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="benchkit-scaling-"))
    grid = dict(methods=args.methods.split(","), n_images=args.n_images, metrics=["psnr"])
    threads = torch.get_num_threads()
    rows = []
    try:
        torch.set_num_threads(1)
        rows.append(("inprocess, 1 torch thread", timed(RunConfig(out=root / "one", **grid))))
        torch.set_num_threads(threads)
        rows.append((f"inprocess, {threads} torch threads", timed(RunConfig(out=root / "default", **grid))))
        for name in ("processes", "dask"):
            config = RunConfig(out=root / name, executor=name, shard_size=args.shard_size,
                               executor_options={"workers": args.workers}, **grid)
            rows.append((f"{name}, {args.workers} workers x 1 thread, shards of {args.shard_size}", timed(config)))
        reference = load_results(root / "one").sort_values(["mask", "method", "image_id"]).psnr.to_numpy()
        for name in ("default", "processes", "dask"):
            other = load_results(root / name).sort_values(["mask", "method", "image_id"]).psnr.to_numpy()
            assert (other == reference).all(), f"{name} differs from the in-process run"
        # Dask's cost per shard: mean-fill on 1-image shards, against the same run in one shard per cell
        tiny = dict(methods=["mean-fill"], masks=["center"], n_images=256, metrics=["psnr"])
        whole = timed(RunConfig(out=root / "tiny-inprocess", **tiny))
        sharded = timed(RunConfig(out=root / "tiny-dask", executor="dask", shard_size=1,
                                  executor_options={"workers": args.workers}, **tiny))
        startup = time.perf_counter()
        dask = Registry(block_external=True).create("executor", "dask", {"workers": str(args.workers)})
        dask.start()
        dask.close()
        startup = time.perf_counter() - startup
    finally:
        shutil.rmtree(root, ignore_errors=True)
    images = args.n_images * 4 * len(grid["methods"])
    print(f"grid: {', '.join(grid['methods'])} x 4 masks x {args.n_images} images = {images} inpainted images; "
          f"{torch.get_num_threads()} torch threads by default on {__import__('os').cpu_count()} CPUs\n")
    base = rows[0][1]
    print("| executor | wall (s) | images/s | speed-up vs 1 thread | vs default in-process |")
    print("|---|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {images / seconds:.0f} | {base / seconds:.2f}x "
              f"| {rows[1][1] / seconds:.2f}x |")
    print(f"\nDask per-shard overhead: 256 one-image shards of mean-fill took {sharded:.1f} s against {whole:.2f} s "
          f"in one in-process shard: {(sharded - whole) / 256 * 1000:.1f} ms per shard (with {args.workers} workers; "
          f"LocalCluster start-up included); starting and closing a {args.workers}-worker LocalCluster alone "
          f"took {startup:.1f} s, which the dask row above includes")


if __name__ == "__main__":
    main()
