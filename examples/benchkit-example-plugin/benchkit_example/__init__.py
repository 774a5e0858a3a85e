"""An example third-party benchkit plugin: a method and a mask, registered through hooks."""
import time

import numpy as np
import torch

import benchkit
from benchkit.interfaces import MaskGenerator, Method


class FlatFill(Method):
    """Fill every missing pixel with one constant grey level."""

    name = "flat-fill"
    description = "fills holes with a constant grey level (example third-party plugin)"

    def __init__(self, value: float = 0.5, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay  # seconds to sleep per batch, to test interrupted runs

    def inpaint(self, images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return torch.where(known, images, torch.full_like(images, self.value))


class StripesMask(MaskGenerator):
    """Every other group of ``width`` rows missing."""

    name = "stripes"
    description = "horizontal stripes missing (example third-party plugin)"

    def __init__(self, width: int = 2) -> None:
        self.width = width

    def known(self, height, width, *, index, rng):
        rows = (np.arange(height) // self.width) % 2 == 0
        return np.repeat(rows[:, None], width, axis=1)


@benchkit.hookimpl
def register_methods(register):
    register(FlatFill)


@benchkit.hookimpl
def register_masks(register):
    register(StripesMask)
