"""The one adapter between benchkit's convention and a published model's.

benchkit hands every method ``float32 N x C x H x W`` images in [0, 1] with the missing pixels
zeroed, and ``known`` masks (``N x 1 x H x W`` bool, True where observed); it composites the output
itself and keeps the raw output for the known-region metrics. A published model has its own
convention, declared by its loader and overridable inline: which mask value marks the hole, the
value range of its input and output, one input or two, and the size it accepts (a multiple of
``multiple`` pixels), reached by a size strategy:

* ``pad`` (the default): each side padded at its end to the next multiple, by reflecting the image
  about its last row and column with the edge repeated (numpy's ``symmetric``, as IOPaint's
  ``pad_img_to_modulo`` pads image and mask alike; LaMa's ``pad_tensor_to_modulo`` pads at the
  same ends); the output is cropped back.
* ``resize``: bicubic to the next multiple and back (recorded in the spec, so in every cell).
* ``crop``: a window of ``margin`` pixels around each hole, padded as ``pad`` pads
  (:mod:`.cropping`, IOPaint's crop strategy).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

MaskValue = Literal["hole", "known"]
Scale = Literal["unit", "byte"]
Strategy = Literal["pad", "resize", "crop"]


@dataclass(frozen=True)
class Convention:
    """How a model takes its inputs and gives its output.

    ``mask``: the value 1 (255 at byte scale) of the model's mask means ``hole`` or ``known``.
    ``scale``: input images in [0, 1] (``unit``) or [0, 255] (``byte``); ``output_scale`` the
    output's (None: the same). ``multiple``: the sides the model accepts are multiples of it;
    ``size``: the one ``(H, W)`` it accepts, if fixed; ``minimum``: the smallest side it accepts;
    ``square``: whether it takes only square inputs (IOPaint's ``min_size`` and ``pad_to_square``).
    ``strategy``: ``pad``, ``resize`` or ``crop`` to reach them; ``margin``: the context around each
    hole that ``crop`` keeps.
    """

    mask: MaskValue = "hole"
    scale: Scale = "unit"
    multiple: int = 8
    strategy: Strategy = "pad"
    output_scale: Scale | None = None
    size: tuple[int, int] | None = None
    margin: int = 128
    minimum: int = 0
    square: bool = False

    def describe(self) -> str:
        """One line for model cards and the guide."""
        values = {"unit": "[0, 1]", "byte": "[0, 255]"}
        out = self.output_scale or self.scale
        sides = f"{self.size[0]}x{self.size[1]}" if self.size else f"sides made multiples of {self.multiple}"
        how = f"crop ({self.margin} px around each hole), then pad" if self.strategy == "crop" else self.strategy
        return f"mask 1 = {self.mask}, input values in {values[self.scale]}, output in {values[out]}, {sides} by {how}"

    def target(self, height: int, width: int) -> tuple[int, int]:
        """The size the model is given for an image of ``height x width``: square if it must be, at
        least the minimum, then up to the multiple (as IOPaint's ``pad_img_to_modulo`` sizes it)."""
        if self.size:
            return self.size
        if self.square:
            height = width = max(height, width)
        height, width = max(height, self.minimum), max(width, self.minimum)
        return -(-height // self.multiple) * self.multiple, -(-width // self.multiple) * self.multiple

    def to_model(self, images: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """benchkit's images (missing pixels 0) and ``known`` masks as the model takes them: sized to
        the multiple, its mask polarity and its value scale; the image's holes stay zero."""
        hole = (~known).to(images.dtype)
        images, hole = self._sized(images, hole)
        mask = hole if self.mask == "hole" else 1 - hole
        factor = 255.0 if self.scale == "byte" else 1.0
        return images * (1 - hole) * factor, mask * factor

    def from_model(self, output: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The model's output back in benchkit's convention: [0, 1] float32 of the images' size."""
        output = output.to(torch.float32) / (255.0 if (self.output_scale or self.scale) == "byte" else 1.0)
        height, width = shape[-2:]
        if self.strategy == "resize":  # bicubic overshoot is the resize's, not the model's: clamped
            return F.interpolate(output, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
        return output[..., :height, :width]  # as the model gave it: the run checks its range

    def _sized(self, images: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = images.shape[-2:]
        target = self.target(height, width)
        if target == (height, width):
            return images, hole
        if self.strategy == "resize":
            sized = F.interpolate(images, size=target, mode="bicubic", align_corners=False).clamp(0, 1)
            return sized, (F.interpolate(hole, size=target, mode="nearest") > 0.5).to(images.dtype)
        pad = (target[0] - height, target[1] - width)
        return symmetric_pad(images, *pad), symmetric_pad(hole, *pad)  # image and mask alike, as IOPaint pads


def symmetric_pad(images: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Pad at the bottom and right by mirroring with the edge repeated (numpy's ``symmetric``):
    ``[a, b, c]`` padded by 2 is ``[a, b, c, c, b]``, and by more than the side, mirrored again
    (``[a, b]`` padded by 5 is ``[a, b, b, a, a, b, b]``)."""
    if bottom:
        images = images[..., _mirrored(images.shape[-2], bottom), :]
    if right:
        images = images[..., :, _mirrored(images.shape[-1], right)]
    return images


def _mirrored(side: int, pad: int) -> torch.Tensor:
    """Indices of ``side`` samples followed by ``pad`` more, the whole sequence periodic with period
    ``2 side``, the second half reversed (numpy's ``symmetric`` extension)."""
    index = torch.arange(side + pad) % (2 * side)
    return torch.where(index < side, index, 2 * side - 1 - index)
