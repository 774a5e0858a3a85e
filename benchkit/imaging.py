"""Image tensors: decoding many files into one tensor, uint8 conversion, PNG files and grids."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def decode_into(out: torch.Tensor, count: int, decode) -> None:
    """``out[i] = decode(i)`` for ``i < count``, ``decode`` giving an ``H x W x C`` array: on a few
    threads, as image decoders release the GIL. Rows are written in place; the first failing ``i``
    (in order) raises."""
    from concurrent.futures import ThreadPoolExecutor

    def fill(i: int) -> None:
        out[i] = torch.from_numpy(np.ascontiguousarray(decode(i).transpose(2, 0, 1)))

    with ThreadPoolExecutor(max(1, min(4, torch.get_num_threads()))) as pool:
        for _ in pool.map(fill, range(count)):
            pass


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``N x C x H x W`` float in [0, 1] -> ``N x H x W x C`` uint8 (rounded, clipped)."""
    array = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return array.transpose(0, 2, 3, 1)


def grid(images: torch.Tensor, ncols: int | None = None, pad: int = 2, fill: float = 1.0) -> torch.Tensor:
    """Tile ``N x C x H x W`` images row by row into one ``C x H' x W'`` image, ``pad`` px apart."""
    n, c, h, w = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    out = torch.full((c, nrows * (h + pad) + pad, ncols * (w + pad) + pad), fill, dtype=images.dtype)
    for i in range(n):
        r, col = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        out[:, top:top + h, left:left + w] = images[i].cpu()
    return out


def save_png(image: torch.Tensor, path: Path, scale: int = 1) -> None:
    """Save one ``C x H x W`` float image in [0, 1] as PNG, enlarged ``scale`` times (nearest)."""
    from PIL import Image

    array = to_uint8(image[None])[0]
    pil = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path)
