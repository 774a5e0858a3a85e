"""Simple built-in baselines: ``mean-fill``."""
from __future__ import annotations

import torch

from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method


class MeanFill(Method):
    """Fill every missing pixel with the mean of the image's known pixels, per channel."""

    name = "mean-fill"
    seconds_per_image = 2e-05  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "fills holes with the per-channel mean of the image's known pixels"

    def inpaint(self, images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        weight = known.to(images.dtype)
        mean = (images * weight).sum(dim=(2, 3), keepdim=True) / weight.sum(dim=(2, 3), keepdim=True)
        return torch.where(known, images, mean.expand_as(images))


@hookimpl
def register_methods(register):
    register(MeanFill)
