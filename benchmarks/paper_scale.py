"""Per-image cost of each method at the paper's scale (64x64 RGB), and what Table 1 then costs.

    python benchmarks/paper_scale.py [--n 32] [--gan-iterations 20] [--threads 1]

No CelebA/SVHN/Cars here, so the images are the embedded Fashion-MNIST test images resized to 64 px
and tinted into 3 channels (the methods' cost depends on the image size, the hole and, for tv, on how
fast it converges, not on what the pictures show). The gan and ce checkpoints are untrained 64x64x3
networks of the paper's shape: their speed is that of trained ones. gan runs ``--gan-iterations``
steps and its cost is scaled linearly to the paper's 1500 (each step costs the same). The script prints
seconds per image per (method, mask) on this CPU with ``--threads`` torch threads, then the time of the
full Table 1 grid (3 datasets x 2,000 test images x 4 masks) on 1 core and on a 32-core node (perfect
scaling over shards, which the executors give for independent images).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchkit.checkpoints import model_stem, save_model
from benchkit.plugin.registry import Registry
from benchkit.run.runner import RunConfig, run
from benchkit.store.results import load_results

MASKS = ["center", "pattern", "random", "half"]
TABLE1_IMAGES = 3 * 2000  # CelebA (about 2,000 held out), SVHN and Cars, 2,000 each in the paper's protocol


def write_images(folder: Path, n: int) -> None:
    images = Registry(block_external=True).create("dataset", "fashion-mnist-mini").images("test", limit=n)
    folder.mkdir(parents=True)
    tints = np.array([[1.0, 0.8, 0.6], [0.6, 0.9, 1.0], [0.9, 1.0, 0.7]])
    for i, image in enumerate(images[:, 0].numpy()):
        rgb = (image[..., None] * tints[i % 3] * 255).astype(np.uint8)
        Image.fromarray(rgb).resize((64, 64), Image.BICUBIC).save(folder / f"{i:04d}.png")


def write_models(models: Path, dataset: str) -> None:
    from benchkit.builtins.nets.context_encoder import ContextEncoder
    from benchkit.builtins.nets.dcgan import Discriminator, Generator

    common = {"size": 64, "channels": 3, "width": 64, "nz": 100, "dataset": "timing", "untrained": True}
    gen, disc = Generator(64, 3, 100, 64), Discriminator(64, 3, 64)
    tensors = {f"generator.{k}": v for k, v in gen.state_dict().items()}
    tensors |= {f"discriminator.{k}": v for k, v in disc.state_dict().items()}
    save_model(models / f"{model_stem('gan', dataset)}.safetensors", tensors, common)
    net = ContextEncoder(64, 3, 64, None)
    encoder = {f"encoder.{k}": v for k, v in net.state_dict().items()}
    save_model(models / f"{model_stem('ce', dataset)}.safetensors", encoder,
               common | {"bottleneck": net.bottleneck, "fill": [0.5, 0.5, 0.5]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="test images per (method, mask)")
    parser.add_argument("--gan-iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default="mean-fill,tv,lowrank,nn,biharmonic,patchmatch,telea,ce,gan")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="benchkit-paper-scale-"))
    try:
        write_images(root / "data" / "test", args.n)
        write_images(root / "data" / "train", 512)  # nn's retrieval set (its cost grows with it: see below)
        write_models(root / "models", f"folder:{root / 'data'}")
        registry = Registry(block_external=True)
        methods = [m for m in args.methods.split(",") if not registry.get("method", m).cls.missing_requirement()]
        config = RunConfig(methods=methods, datasets=[f"folder:{root / 'data'}"], masks=MASKS, n_images=args.n,
                           metrics=["psnr"], models_dir=str(root / "models"), out=root / "run",
                           options={"folder": {"size": "64"}, "gan": {"iterations": str(args.gan_iterations)}})
        run(config, registry, show_progress=False)
        df = load_results(root / "run")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_image = df.groupby(["method", "mask"]).seconds.mean().unstack("mask")[MASKS]
    per_image.loc["gan"] *= 1500 / args.gan_iterations
    per_image.loc["nn"] *= 162_770 / 512  # retrieval cost is linear in the training set (CelebA's)
    print(f"seconds per 64x64x3 image, {args.threads} torch thread(s), {args.n} images per mask "
          f"(gan scaled to 1500 iterations, nn to CelebA's 162,770 training images):\n")
    print("| method | " + " | ".join(MASKS) + " | Table 1 grid, 1 core | 32 cores |")
    print("|---|" + "---|" * (len(MASKS) + 2))
    total = 0.0
    for method, row in per_image.iterrows():
        grid = float(row.mean()) * TABLE1_IMAGES * len(MASKS)
        total += grid
        print(f"| {method} | " + " | ".join(f"{v:.3f}" for v in row)
              + f" | {grid / 3600:.1f} h | {grid / 32 / 3600:.2f} h |")
    print(f"| all | | | | | {total / 3600:.1f} h | {total / 32 / 3600:.2f} h |")


if __name__ == "__main__":
    main()
