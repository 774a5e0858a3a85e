"""Cheap trusted references: scikit-image's ``biharmonic`` and OpenCV's ``telea``.

Both libraries take a mask of the *hole* (True / non-zero where pixels are missing), the opposite
of benchkit's ``known``; the conversion happens here and nowhere else.
"""
from __future__ import annotations

from typing import Annotated

import numpy as np
import torch

from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method
from benchkit.plugin.options import Range


def _per_image(images: torch.Tensor, known: torch.Tensor, fill) -> torch.Tensor:
    """Apply ``fill(image HxWxC float64, hole HxW bool) -> HxWxC`` to each image of a batch."""
    array = images.detach().cpu().double().numpy().transpose(0, 2, 3, 1)
    holes = ~known[:, 0].cpu().numpy()
    out = np.stack([fill(image, hole) for image, hole in zip(array, holes)])
    return torch.from_numpy(out.transpose(0, 3, 1, 2).copy()).to(images.device, images.dtype)


class Biharmonic(Method):
    """scikit-image's biharmonic inpainting (``skimage.restoration.inpaint_biharmonic``)."""

    name = "biharmonic"
    seconds_per_image = 0.003  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "biharmonic equation fill, scikit-image's inpaint_biharmonic"

    def inpaint(self, images, known):
        from skimage.restoration import inpaint_biharmonic

        return _per_image(images, known, lambda im, hole: inpaint_biharmonic(im, hole, channel_axis=-1))


class Telea(Method):
    """OpenCV's fast-marching inpainting (Telea 2004) on 8-bit images; needs opencv-python-headless.

    Parameters
    ----------
    radius : float
        Neighbourhood radius in pixels of each inpainted point.
    """

    name = "telea"
    seconds_per_image = 0.00032  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "OpenCV cv2.inpaint, Telea's fast marching"
    requires = ("cv2",)
    install_hint = "pip install opencv-python-headless"

    def __init__(self, radius: Annotated[float, Range(0, exclusive=True)] = 3.0) -> None:
        self.radius = radius

    def inpaint(self, images, known):
        import cv2

        def fill(image, hole):
            pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
            out = cv2.inpaint(pixels, hole.astype(np.uint8) * 255, self.radius, cv2.INPAINT_TELEA)
            return out.reshape(image.shape).astype(np.float64) / 255

        return _per_image(images, known, fill)


@hookimpl
def register_methods(register):
    register(Biharmonic)
    register(Telea)
