"""Make the masks of a (dataset, mask) pair, seeded per (seed, dataset, mask name, image index)."""
from __future__ import annotations

import zlib

import numpy as np
import torch

from benchkit.interfaces import MaskGenerator


def mask_rng(seed: int, dataset: str, mask: str, index: int) -> np.random.Generator:
    """The generator for one image's mask: independent of every other image, method and run order."""
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), zlib.crc32(mask.encode()), index])


def make_masks(generator: MaskGenerator, dataset: str, mask: str, image_ids: list[int],
               height: int, width: int, seed: int) -> torch.Tensor:
    """Return ``N x 1 x H x W`` bool ``known`` masks for the given image indices."""
    masks = [np.asarray(generator.known(height, width, index=i, rng=mask_rng(seed, dataset, mask, i)))
             for i in image_ids]
    for m in masks:
        if m.shape != (height, width):
            from benchkit.errors import UserError

            raise UserError(f"mask '{mask}' returned shape {m.shape} for {height}x{width} images: "
                            "fix the mask plugin")
    return torch.from_numpy(np.stack(masks).astype(bool))[:, None]
