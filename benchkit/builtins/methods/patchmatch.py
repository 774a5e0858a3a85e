"""``patchmatch``: exemplar-based inpainting with PatchMatch (Barnes et al. 2009).

Wraps the compiled inpainter of PyPI's ``pypatchmatch`` (extra: ``benchkit[patchmatch]``), which
fills holes coarse to fine from patches of the same image. ``patch_size`` is the patch *radius*
(patches of (2r+1)^2 pixels); the default 3 (7x7 patches) suits 32-64 px images.

Known failure: with 80% of pixels missing at random there are almost no complete known patches to
copy from, which the paper gives as the reason it omits PatchMatch there; benchkit runs it anyway
and reports what comes out.
"""
from __future__ import annotations

from typing import Annotated

import numpy as np
import torch

from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method
from benchkit.plugin.options import Range


class PatchMatch(Method):
    """PatchMatch inpainting of each image, gray images processed as three equal channels.

    Parameters
    ----------
    patch_size : int
        Patch radius in pixels (3: 7x7 patches).
    """

    name = "patchmatch"
    seconds_per_image = 0.0055  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "PatchMatch exemplar inpainting, coarse to fine (extra: benchkit[patchmatch])"
    requires = ("patchmatch",)
    install_hint = "pip install 'benchkit[patchmatch]'"

    def __init__(self, patch_size: Annotated[int, Range(1)] = 3) -> None:
        self.patch_size = patch_size

    def inpaint(self, images, known):
        from patchmatch import patch_match

        array = np.round(images.detach().cpu().clamp(0, 1).numpy() * 255).astype(np.uint8)
        holes = (~known[:, 0].cpu().numpy()).astype(np.uint8) * 255
        out = np.empty_like(array)
        for i, (image, hole) in enumerate(zip(array, holes)):
            rgb = np.repeat(image, 3, 0) if image.shape[0] == 1 else image
            filled = patch_match.inpaint(np.ascontiguousarray(rgb.transpose(1, 2, 0)), hole,
                                         patch_size=self.patch_size)
            out[i] = filled.transpose(2, 0, 1)[: image.shape[0]]
        return torch.from_numpy(out).to(images.device).float() / 255


@hookimpl
def register_methods(register):
    register(PatchMatch)
