"""``tv``: total-variation inpainting (the paper's TV baseline, after Afonso et al. 2011).

Solves, per image, ``min_x TV(x)  s.t.  x = y on the known pixels``, where TV is the isotropic total
variation coupled across colour channels::

    TV(x) = sum over pixels of sqrt( sum_c (D_h x_c)^2 + (D_v x_c)^2 )

with forward differences and Neumann boundaries (no difference across the image border). The solver
is Chambolle-Pock's primal-dual algorithm (step sizes tau = sigma = 0.99/sqrt(8), theta = 1),
batched over images, which projects onto the constraint by resetting the known pixels each step.
It stops when the relative change ||x_k+1 - x_k|| / ||x_k|| of every image in the batch falls
below ``tol`` (default 1e-5) or after ``max_iter`` iterations (default 3000).
"""
from __future__ import annotations

import math

import torch

from benchkit.hookspecs import hookimpl
from benchkit.interfaces import Method


def gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along width and height; zero in the last column / row (Neumann)."""
    dh = torch.zeros_like(x)
    dv = torch.zeros_like(x)
    dh[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    dv[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    return dh, dv


def divergence(ph: torch.Tensor, pv: torch.Tensor) -> torch.Tensor:
    """Discrete divergence, the negative adjoint of :func:`gradient`."""
    div = torch.zeros_like(ph)
    div[..., :, 0] = ph[..., :, 0]
    div[..., :, 1:-1] = ph[..., :, 1:-1] - ph[..., :, :-2]
    div[..., :, -1] = -ph[..., :, -2]
    div[..., 0, :] += pv[..., 0, :]
    div[..., 1:-1, :] += pv[..., 1:-1, :] - pv[..., :-2, :]
    div[..., -1, :] -= pv[..., -2, :]
    return div


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Isotropic, colour-coupled TV of each image of an ``N x C x H x W`` batch."""
    dh, dv = gradient(x)
    return (dh.pow(2) + dv.pow(2)).sum(1).sqrt().flatten(1).sum(1)


def tv_inpaint(images: torch.Tensor, known: torch.Tensor, tol: float = 1e-5, max_iter: int = 3000
               ) -> tuple[torch.Tensor, int]:
    """Minimise TV subject to the known pixels; returns the images and the iterations run."""
    y = images.double()
    mask = known.expand_as(y)
    fill = (y * mask).sum((2, 3), keepdim=True) / mask.sum((2, 3), keepdim=True).clamp(min=1)
    x = torch.where(mask, y, fill)  # start from the mean of the known pixels
    x_bar = x.clone()
    ph, pv = torch.zeros_like(x), torch.zeros_like(x)
    tau = sigma = 0.99 / math.sqrt(8.0)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        gh, gv = gradient(x_bar)
        ph, pv = ph + sigma * gh, pv + sigma * gv
        scale = (ph.pow(2) + pv.pow(2)).sum(1, keepdim=True).sqrt().clamp(min=1.0)
        ph, pv = ph / scale, pv / scale
        x_new = torch.where(mask, y, x + tau * divergence(ph, pv))
        change = (x_new - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1).clamp(min=1e-12)
        x_bar = 2 * x_new - x
        x = x_new
        if iterations % 10 == 0 and change.max().item() < tol:
            break
    return x.clamp(0, 1).to(images.dtype), iterations


class TVInpainting(Method):
    """Total-variation inpainting solved to convergence with Chambolle-Pock."""

    name = "tv"
    description = "total-variation inpainting (Chambolle-Pock, colour-coupled isotropic TV)"

    def __init__(self, tol: float = 1e-5, max_iter: int = 3000) -> None:
        self.tol, self.max_iter = tol, max_iter

    def inpaint(self, images, known):
        return tv_inpaint(images, known, self.tol, self.max_iter)[0]


@hookimpl
def register_methods(register):
    register(TVInpainting)
