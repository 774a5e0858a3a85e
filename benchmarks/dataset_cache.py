"""How much the uint8 cache saves: first and second load of a CelebA-format folder.

    python benchmarks/dataset_cache.py [--n 2000]

Writes N synthetic 178 x 218 JPEGs and a ``list_eval_partition.txt`` (all in the test partition)
to a temporary folder in CelebA's official layout, then times ``celeba`` loading the test split
twice: the first load decodes, crops and resizes every image and writes the cache; the second
memory-maps it.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=2000)
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp) / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(args.n):
        pixels = rng.integers(0, 256, (218 // 8, 178 // 8, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize((178, 218), Image.BILINEAR)  # smooth, JPEG-like content
        image.save(root / "img_align_celeba" / f"{i + 1:06d}.jpg", quality=90)
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg 2\n" for i in range(args.n)))
    os.environ["BENCHKIT_CACHE"] = str(Path(tmp) / "cache")

    from benchkit.builtins.datasets.paper import CelebA

    times = []
    for _ in range(2):
        start = time.perf_counter()
        images = CelebA(data_dir=tmp).images("test")
        times.append(time.perf_counter() - start)
    print(f"celeba test split, {args.n} images -> {tuple(images.shape)}: first load {times[0]:.2f} s "
          f"(decode, crop, resize, cache), second {times[1]:.3f} s (memory-mapped cache): "
          f"{times[0] / times[1]:.0f}x faster")
