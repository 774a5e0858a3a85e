"""``tv``: total-variation inpainting (the paper's TV baseline, after Afonso et al. 2011).

Solves, per image, ``min_x TV(x)  s.t.  x = y on the known pixels``, where TV is the isotropic total
variation coupled across colour channels::

    TV(x) = sum over pixels of sqrt( sum_c (D_h x_c)^2 + (D_v x_c)^2 )

with forward differences and Neumann boundaries (no difference across the image border). The solver
is Chambolle-Pock's primal-dual algorithm (step sizes tau = sigma = 0.99/sqrt(8), theta = 1),
batched over images, which projects onto the constraint by resetting the known pixels each step.
Each image stops (and leaves the batch) when its relative change ||x_k+1 - x_k|| / ||x_k|| falls
below ``tol`` (default 1e-4, checked every 10 iterations) or after ``max_iter`` iterations (default
3000). On 64 Fashion-MNIST images the TV reached at tol 1e-4 is within 0.12% of that at 1e-5
(which takes 2-3x longer); the tests check it against cvxpy's exact optimum to 1%. It computes in
float32. Large holes converge slowest: the ``half`` mask usually runs all 3000 iterations.
"""
from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F

from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method
from benchkit.plugin.options import Range


def gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along width and height; zero in the last column / row (Neumann)."""
    return F.pad(torch.diff(x, dim=-1), (0, 1)), F.pad(torch.diff(x, dim=-2), (0, 0, 0, 1))


def divergence(ph: torch.Tensor, pv: torch.Tensor) -> torch.Tensor:
    """Discrete divergence, the negative adjoint of :func:`gradient` (last column / row of p unused)."""
    ph, pv = ph[..., :-1], pv[..., :-1, :]
    return F.pad(ph, (0, 1)) - F.pad(ph, (1, 0)) + F.pad(pv, (0, 0, 0, 1)) - F.pad(pv, (0, 0, 1, 0))


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Isotropic, colour-coupled TV of each image of an ``N x C x H x W`` batch."""
    dh, dv = gradient(x)
    return (dh.pow(2) + dv.pow(2)).sum(1).sqrt().flatten(1).sum(1)


def coarse_start(images: torch.Tensor, known: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Initial guess for the hole: the TV solution at half resolution, upsampled (coarse to fine).

    A 2x2 block is known at the coarse level if any of its pixels is; its value is the mean of those.
    Below 16 px the guess is the mean of each image's known pixels.
    """
    y, mask = images, known.expand_as(images)
    height, width = y.shape[-2:]
    if min(height, width) < 16 or height % 2 or width % 2:
        fill = (y * mask).sum((2, 3), keepdim=True) / mask.sum((2, 3), keepdim=True).clamp(min=1)
        return torch.where(mask, y, fill)
    weight = F.avg_pool2d(known.to(y.dtype), 2)
    coarse_known = weight > 0
    coarse = F.avg_pool2d(y * known, 2) / weight.clamp(min=1e-12)
    coarse, _ = tv_inpaint(coarse, coarse_known, tol, max_iter)
    return torch.where(mask, y, F.interpolate(coarse, scale_factor=2, mode="nearest"))


def tv_inpaint(images: torch.Tensor, known: torch.Tensor, tol: float = 1e-4, max_iter: int = 3000
               ) -> tuple[torch.Tensor, int]:
    """Minimise TV subject to the known pixels; returns the images and the iterations run.

    Starts from the half-resolution solution (:func:`coarse_start`). Computes in the dtype of
    ``images`` (float32 for the method; tests also use float64).
    """
    y = images
    mask = known.expand_as(y)
    x = coarse_start(images, known, tol, max_iter)
    out = x.clone()
    active = torch.arange(len(x), device=x.device)  # images still iterating; converged ones leave
    x_bar = x.clone()
    ph, pv = torch.zeros_like(x), torch.zeros_like(x)
    tau = sigma = 0.99 / math.sqrt(8.0)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        gh, gv = gradient(x_bar)
        ph.add_(gh, alpha=sigma)
        pv.add_(gv, alpha=sigma)
        scale = (ph * ph + pv * pv).sum(1, keepdim=True).sqrt_().clamp_(min=1.0)
        ph.div_(scale)
        pv.div_(scale)
        x_new = torch.where(mask, y, x + tau * divergence(ph, pv))
        if iterations % 10 == 0:
            change = (x_new - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1).clamp(min=1e-12)
            done = change < tol
            if done.any():
                out[active[done]] = x_new[done]
                keep = ~done
                active, x_new, x, ph, pv, y, mask = (t[keep] for t in (active, x_new, x, ph, pv, y, mask))
                if len(active) == 0:
                    break
        x_bar = 2 * x_new - x
        x = x_new
    out[active] = x
    return out.clamp(0, 1), iterations


class TVInpainting(Method):
    """Total-variation inpainting solved to convergence with Chambolle-Pock.

    Parameters
    ----------
    tol : float
        Stop an image when its relative change falls below this (checked every 10 iterations).
    max_iter : int
        Most iterations per image.
    """

    name = "tv"
    seconds_per_image = 0.0066  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "total-variation inpainting (Chambolle-Pock, colour-coupled isotropic TV)"

    def __init__(self, tol: Annotated[float, Range(0, exclusive=True)] = 1e-4,
                 max_iter: Annotated[int, Range(1)] = 3000) -> None:
        self.tol, self.max_iter = tol, max_iter

    def inpaint(self, images, known):
        return tv_inpaint(images.float(), known, self.tol, self.max_iter)[0]


@hookimpl
def register_methods(register):
    register(TVInpainting)
