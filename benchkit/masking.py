"""Make the masks of a (dataset, mask) pair, seeded per (seed, dataset identity, mask name, image).

An image is identified by its content key where its dataset gives one (a digest of the file, see
:meth:`benchkit.plugin.interfaces.Dataset.image_keys`), otherwise by the dataset's name and the image's
position. Either way, an image's mask does not depend on the other images, the methods or the
order of the run, and a content key makes it the same on every machine and under every path.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch

from benchkit.errors import UserError
from benchkit.plugin.interfaces import MaskGenerator


def mask_rng(seed: int, dataset: str, mask: str, index: int, image_key: str | None = None) -> np.random.Generator:
    """The generator for one image's mask: independent of every other image, method and run order.

    With ``image_key`` (a hex digest of the image's content) the image's identity replaces the
    dataset name and position.
    """
    if image_key is not None:
        return np.random.default_rng([seed, int(image_key[:32], 16), zlib.crc32(mask.encode()), 2])
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), zlib.crc32(mask.encode()), index])


def make_masks(generator: MaskGenerator, dataset: str, mask: str, image_ids: list[int],
               height: int, width: int, seed: int, image_keys: list[str] | None = None) -> torch.Tensor:
    """Return ``N x 1 x H x W`` bool ``known`` masks for the given image indices.

    Each mask is checked: the right shape, a boolean array, at least one missing and one known
    pixel; a bad one raises UserError naming the image (and the mask's file, for file masks).
    """
    if seed < 0:
        raise UserError(f"seed {seed} is negative: use a seed >= 0")

    def where(position: int) -> str:
        i = image_ids[position]
        source = generator.source(i)
        return f"image {i} of '{dataset}'" + (f" (mask file {source})" if source else "")

    masks = []
    for position, i in enumerate(image_ids):
        key = image_keys[position] if image_keys is not None else None
        m = np.asarray(generator.known(height, width, index=i, rng=mask_rng(seed, dataset, mask, i, key)))
        if m.shape != (height, width):
            raise UserError(f"mask '{mask}' returned shape {m.shape} for {height}x{width} images "
                            f"({where(position)}): fix the mask plugin")
        if m.dtype != bool:
            if m.dtype.kind not in "uif" or not np.isin(m, (0, 1)).all():
                raise UserError(f"mask '{mask}' returned {m.dtype} values other than 0 and 1 for "
                                f"{where(position)}: fix the mask plugin to return a bool array")
            m = m.astype(bool)
        masks.append(m)
    known = torch.from_numpy(np.stack(masks))[:, None]
    check_known(known, (len(masks), 1, height, width), f"mask '{mask}'", where)  # a hole and known pixels in each
    return known


def check_known(known: torch.Tensor, images, source: str, where: Callable[[int], str] | None = None) -> None:
    """Masks must be bool ``N x 1 x H x W`` matching the images (a tensor, or its shape), each with
    known and missing pixels. ``where(i)`` names the i-th mask in messages (default ``image i``)."""
    image_shape = tuple(images.shape) if hasattr(images, "shape") else tuple(images)
    expected = (image_shape[0], 1, *image_shape[2:])
    if not isinstance(known, torch.Tensor) or known.dtype != torch.bool or tuple(known.shape) != expected:
        shape = tuple(known.shape) if hasattr(known, "shape") else type(known).__name__
        raise UserError(f"{source} gave masks of shape {shape} and type {getattr(known, 'dtype', '?')} "
                        f"for images of shape {image_shape}: expected bool {expected}")
    name = where or (lambda i: f"image {i}")
    per_image = known.flatten(1)
    no_missing = (per_image.all(1)).nonzero().flatten().tolist()
    if no_missing:
        raise UserError(f"{source} leaves no missing pixel in {name(no_missing[0])}: every mask needs a hole "
                        "to inpaint")
    no_known = (~per_image.any(1)).nonzero().flatten().tolist()
    if no_known:
        raise UserError(f"{source} leaves no known pixel in {name(no_known[0])}: every mask must keep some "
                        "observed pixels")
