"""Speed of scoring a folder of predictions: benchkit against pytorch-fid and lpips, same folder, same run.

    python benchmarks/score_folder.py [--n 2000] [--size 256] [--threads 2] [--metrics psnr,ssim,lpips-alex,fid]

Makes N random-texture RGB images of SIZE x SIZE (a `folder:` dataset), exports them with the
`thick` masks, writes predictions (the ground truth with noise in the holes) and scores the folder
with `benchkit run --methods predictions:P` for each of the metrics (psnr, ssim, lpips-alex and fid)
alone, then all of them in one run. The networks get random weights written in the published files'
format (their cost does not depend on the values; nothing is downloaded). Beside benchkit's figures:
FID by pytorch-fid's own `calculate_fid_given_paths` (what its command line runs) on the prediction
and ground-truth folders, and LPIPS by the lpips package's per-pair loop of its `lpips_2dirs.py`
(load_image, im2tensor, forward). The reference tools run first, so that nothing benchkit sets up in
the process (its allocator thresholds, `benchkit.run.allocator`) helps or hinders them. Prints a
Markdown table of images per second; benchkit's figures include reading the images, the masks and
the composites, and writing the results.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]


def textures(folder: Path, n: int, size: int) -> None:
    """N smooth random RGB textures (upsampled noise), as PNG files."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(folder / f"{i:05d}.png")


def predictions(export: Path, out: Path) -> Path:
    """The ground truth with noise in every hole, in the benchkit layout, and the manifest copied."""
    manifest = json.loads((export / "manifest.json").read_text())
    rng = np.random.default_rng(1)
    for cell in manifest["cells"]:
        (out / cell["folder"]).mkdir(parents=True, exist_ok=True)
        for image_id in cell["image_ids"]:
            name = f"{image_id:05d}.png"
            truth = np.asarray(Image.open(export / cell["folder"] / "gt" / name)).astype(np.int16)
            known = np.asarray(Image.open(export / cell["folder"] / "known" / name)) == 255
            noisy = np.where(known[..., None], truth, truth + rng.integers(-40, 41, truth.shape))
            Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out / cell["folder"] / name)
    shutil.copy(export / "manifest.json", out / "manifest.json")
    return out / manifest["cells"][0]["folder"]


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--metrics", default="psnr,ssim,lpips-alex,fid", help="comma-separated, of the four")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from metric_cost import write_random_weights
    from reference_impls import reference

    from benchkit.builtins.metrics.weights import WEIGHTS
    from benchkit.cli import main as benchkit

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = root / "weights"
        weights.mkdir()
        write_random_weights(weights)
        hub = root / "torch" / "hub" / "checkpoints"  # where pytorch-fid and torchvision look for weights
        hub.mkdir(parents=True)
        for name in ("inception-fid", "alexnet"):
            shutil.copy(weights / WEIGHTS[name].filename, hub / WEIGHTS[name].filename)
        torch.hub.set_dir(str(root / "torch" / "hub"))
        textures(root / "gt", args.n, args.size)
        dataset = f"folder:{root / 'gt'}[size={args.size}]"
        common = ["--datasets", dataset, "--masks", "thick", "--n-images", str(args.n)]
        with contextlib.redirect_stdout(io.StringIO()):
            assert benchkit(["export", *common, "--layout", "benchkit", "--out", str(root / "E")]) == 0
        cell = predictions(root / "E", root / "P")
        truth = root / "E" / cell.name / "gt"

        def score(metrics: str, out: str) -> None:
            with contextlib.redirect_stdout(io.StringIO()):  # the tables: only the timing is printed here
                assert benchkit(["run", "--methods", f"predictions:{root / 'P'}", *common, "--metrics", metrics,
                                 "--weights-dir", str(weights), "--out", str(root / out)]) == 0

        def fid_files() -> None:
            fid_score = reference("pytorch_fid.fid_score")
            fid_score.calculate_fid_given_paths([str(cell), str(truth)], 50, "cpu", 2048, num_workers=0)

        def lpips_loop() -> None:  # as its script: build the model, then one pair at a time
            lpips = reference("lpips")
            model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)  # random AlexNet: same cost
            with torch.no_grad():
                for path in sorted(cell.glob("*.png")):
                    model.forward(lpips.im2tensor(lpips.load_image(str(path))),
                                  lpips.im2tensor(lpips.load_image(str(truth / path.name))))

        metrics = args.metrics.split(",")
        seconds = {m: timed(call) for m, call in (("fid", fid_files), ("lpips-alex", lpips_loop)) if m in metrics}
        rows = {m: timed(lambda m=m: score(m, f"R-{m}")) for m in metrics}
        if len(metrics) > 1:
            rows[f"all {len(metrics)}, one run"] = timed(lambda: score(args.metrics, "R-all"))
    n = args.n
    print(f"{n} predictions of {args.size}x{args.size} RGB, thick masks, {args.threads} torch threads; images/s "
          "(benchkit: `benchkit run --methods predictions:P`, reading, compositing and writing included)\n")
    print("| metric | benchkit | reference tool | reference |\n|---|---|---|---|")
    tools = {"fid": "pytorch-fid `calculate_fid_given_paths`", "lpips-alex": "lpips, its `lpips_2dirs.py` loop"}
    references = {m: (tools[m], s) for m, s in seconds.items()}
    if len(seconds) > 1:
        references[f"all {len(metrics)}, one run"] = ("both tools, one after the other", sum(seconds.values()))
    for metric, taken in rows.items():
        tool, other = references.get(metric, ("", None))
        print(f"| {metric} | {n / taken:.1f} | {tool} | {'' if other is None else f'{n / other:.1f}'} |")


if __name__ == "__main__":
    main()
