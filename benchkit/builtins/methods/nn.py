"""``nn``: nearest-neighbour retrieval from the training set (the paper's Fig. 7 baseline).

For each corrupted image the training image nearest in Euclidean distance *over the known pixels*
is retrieved and its pixels fill the hole. Distances for a whole batch come from matrix products::

    d(q, t) = sum_i k_i (q_i - t_i)^2 = sum_i k_i q_i^2 + [k * q, k] . [-2 t, t^2]

one float32 matrix product per chunk of ``chunk`` training images, against a bank of
``[-2 t, t^2]`` rows built once per dataset (2 x 4 bytes per pixel per training image).
``-o nn.blend=true`` Poisson-blends the retrieved pixels into the known ones instead of pasting them.
"""
from __future__ import annotations

from typing import Annotated

import torch

from benchkit.builtins.methods.blending import poisson_blend
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method, MethodContext
from benchkit.plugin.options import Range


def distance_bank(train: torch.Tensor) -> torch.Tensor:
    """``M x 2D`` float32 rows ``[-2 t, t^2]`` so that one product ``[k q, k] @ bank.T`` gives the
    query-dependent part of every masked squared distance."""
    t = train.flatten(1).to(torch.float32)
    return torch.cat([-2 * t, t * t], dim=1)


def nearest_known(queries: torch.Tensor, known: torch.Tensor, train: torch.Tensor,
                  chunk: int = 8192, bank: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the training image nearest to each query over its known pixels.

    ``queries`` is ``N x C x H x W``, ``known`` ``N x 1 x H x W`` bool, ``train`` ``M x C x H x W``;
    ``bank`` is :func:`distance_bank` of ``train`` if already computed.
    """
    k = known.expand_as(queries).flatten(1).to(torch.float32)
    q = queries.flatten(1).to(torch.float32) * k
    base = (q * q).sum(1, keepdim=True)
    left = torch.cat([q, k], dim=1)
    bank = distance_bank(train) if bank is None else bank
    best_dist = torch.full((len(q),), float("inf"), device=q.device)
    best_idx = torch.zeros(len(q), dtype=torch.long, device=q.device)
    for start in range(0, len(bank), chunk):
        dist = base + left @ bank[start:start + chunk].to(q.device).T
        value, index = dist.min(1)
        better = value < best_dist
        best_dist = torch.where(better, value, best_dist)
        best_idx = torch.where(better, index + start, best_idx)
    return best_idx


class NearestNeighbour(Method):
    """Fill the hole with the pixels of the nearest training image (distance over known pixels).

    Parameters
    ----------
    blend : bool
        Poisson-blend the retrieved pixels into the known ones instead of pasting them.
    chunk : int
        Training images per distance matrix product (memory: chunk x batch x 4 bytes).
    """

    name = "nn"
    seconds_per_image = 0.0014  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "nearest training image over the known pixels fills the hole (optional blending)"
    needs_train_data = True

    def __init__(self, blend: bool = False, chunk: Annotated[int, Range(1)] = 8192) -> None:
        self.blend, self.chunk = blend, chunk
        self._cache: dict = {}

    def setup(self, context: MethodContext) -> None:
        self.train = context.train_images.to(context.device)
        self.bank = distance_bank(self.train)

    def inpaint(self, images, known):
        fill = self.train[nearest_known(images, known, self.train, self.chunk, self.bank)]
        if self.blend:
            fill = poisson_blend(fill, images, known, self._cache).clamp(0, 1)
        return torch.where(known, images, fill)


@hookimpl
def register_methods(register):
    register(NearestNeighbour)
