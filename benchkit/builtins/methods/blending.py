"""Poisson blending (Pérez et al. 2003), Eq. 6 of Yeh et al. 2017.

``x = argmin ||grad x - grad g||^2  s.t.  x = y on the known pixels``, with forward differences
between 4-neighbours inside the image (no difference across the border). Its optimality condition,
for every missing pixel i with in-image neighbours N(i)::

    sum_{j in N(i)} (x_i - x_j) = sum_{j in N(i)} (g_i - g_j),   x_j = y_j where j is known,

is a sparse symmetric positive-definite system over the missing pixels. It is factorised once per
distinct mask (scipy's SuperLU) and solved for all channels at once, in float64.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu


def _neighbour_pairs(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (a, b) of every horizontally or vertically adjacent pixel pair."""
    idx = np.arange(height * width).reshape(height, width)
    a = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    return a, b


def laplacian(height: int, width: int) -> sp.csr_matrix:
    """Graph Laplacian L of the 4-neighbour pixel grid: (L x)_i = sum_{j in N(i)} (x_i - x_j)."""
    a, b = _neighbour_pairs(height, width)
    n = height * width
    adjacency = sp.coo_matrix((np.ones(2 * len(a)), (np.concatenate([a, b]), np.concatenate([b, a]))),
                              shape=(n, n)).tocsr()
    return (sp.diags(np.asarray(adjacency.sum(1)).ravel()) - adjacency).tocsr()


class PoissonSolver:
    """Factorisation of the blending system for one ``H x W`` bool mask (True = known)."""

    def __init__(self, known: np.ndarray) -> None:
        self.height, self.width = known.shape
        self.known = known.ravel().astype(bool)
        self.hole = np.flatnonzero(~self.known)
        self.lap = laplacian(self.height, self.width)
        self.system = self.lap[self.hole][:, self.hole].tocsc()
        self.to_known = self.lap[self.hole][:, np.flatnonzero(self.known)]
        self.lu = splu(self.system) if len(self.hole) else None

    def solve(self, guide: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Blend ``guide`` (C x H x W) into ``target`` (C x H x W); returns C x H x W float64."""
        c = guide.shape[0]
        g = guide.reshape(c, -1).T.astype(np.float64)  # pixels x channels
        y = target.reshape(c, -1).T.astype(np.float64)
        out = y.copy()
        if self.lu is not None:
            rhs = (self.lap @ g)[self.hole] - self.to_known @ y[self.known]
            out[self.hole] = self.lu.solve(rhs)
        return out.T.reshape(c, self.height, self.width)


def poisson_blend(guide: torch.Tensor, target: torch.Tensor, known: torch.Tensor,
                  cache: dict | None = None) -> torch.Tensor:
    """Blend a batch: keep ``guide``'s gradients in the hole and ``target`` on the known pixels.

    Parameters
    ----------
    guide : torch.Tensor
        ``N x C x H x W`` image whose gradients fill the hole (for example G(z)), any range.
    target : torch.Tensor
        ``N x C x H x W`` image whose known pixels are kept.
    known : torch.Tensor
        ``N x 1 x H x W`` bool, True where observed.
    cache : dict, optional
        Reused across calls to keep factorisations of masks seen before (keyed by mask bytes).

    Returns
    -------
    torch.Tensor
        ``N x C x H x W`` in ``guide``'s dtype and device (not clipped).
    """
    cache = {} if cache is None else cache
    g = guide.detach().cpu().double().numpy()
    y = target.detach().cpu().double().numpy()
    masks = known[:, 0].cpu().numpy()
    out = np.empty_like(g)
    for i, mask in enumerate(masks):
        key = (mask.shape, mask.tobytes())
        if key not in cache:
            if len(cache) > 4096:
                cache.clear()
            cache[key] = PoissonSolver(mask)
        out[i] = cache[key].solve(g[i], y[i])
    return torch.from_numpy(out).to(guide.device, guide.dtype)
