"""Image tensors: decoding many files into one tensor, uint8 conversion, PNG files and grids."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

FULL_SCALE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}  # integer pixels k are read as k / full scale


def decode_into(out: torch.Tensor, count: int, decode) -> None:
    """``out[i] = decode(i)`` for ``i < count``, into a float32 ``N x C x H x W`` CPU tensor, ``decode``
    giving an ``H x W x C`` array: 8- or 16-bit integers (``k`` is read as ``k / 255`` or
    ``k / 65535``, correctly rounded to float32) or floats in [0, 1]. Runs on a few threads, as image
    decoders release the GIL; rows are written in place, in one pass each; the first failing ``i``
    (in order) raises."""
    from concurrent.futures import ThreadPoolExecutor

    rows = out.numpy()

    def fill(i: int) -> None:
        pixels = decode(i).transpose(2, 0, 1)
        if pixels.dtype in FULL_SCALE:
            np.divide(pixels, FULL_SCALE[pixels.dtype], out=rows[i], dtype=np.float32)
        else:
            rows[i] = pixels

    with ThreadPoolExecutor(max(1, min(4, torch.get_num_threads()))) as pool:
        list(pool.map(fill, range(count)))  # consumed in order: the first failing row raises


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``N x C x H x W`` float in [0, 1] -> ``N x H x W x C`` uint8 (rounded, clipped)."""
    scaled = images.detach().float().mul(255)  # a new tensor: the in-place steps below leave ``images`` alone
    array = scaled.clamp_(0, 255).round_().to(torch.uint8).cpu().numpy()
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
    from benchkit.files import replacing

    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        pil.save(tmp, format="PNG")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sixteen_bit_png_colour_type(data: bytes) -> int | None:
    """The PNG colour type (0 grey, 2 RGB, 4 grey + alpha, 6 RGBA) of a file's first bytes when it is
    a PNG of 16 bits per sample (IHDR byte 24), else None. Pillow reads such colour PNGs at 8 bits
    per channel."""
    if data[:8] == PNG_SIGNATURE and len(data) > 25 and data[24] == 16:
        return data[25]
    return None
