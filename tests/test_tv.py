import cvxpy as cp
import numpy as np
import pytest
import torch

from benchkit.builtins.masks.basic import CenterMask, HalfMask, RandomMask
from benchkit.builtins.methods.tv import divergence, gradient, total_variation, tv_inpaint
from benchkit.masking import make_masks


def _exact_tv(image: np.ndarray, known: np.ndarray) -> float:
    """Minimum colour-coupled isotropic TV under the known-pixel constraints, from cvxpy."""
    c, h, w = image.shape
    xs = [cp.Variable((h, w)) for _ in range(c)]
    rows = []
    for x in xs:
        rows.append(cp.vec(cp.hstack([x[:, 1:] - x[:, :-1], np.zeros((h, 1))]), order="C"))
        rows.append(cp.vec(cp.vstack([x[1:, :] - x[:-1, :], np.zeros((1, w))]), order="C"))
    objective = cp.sum(cp.norm(cp.vstack(rows), 2, axis=0))
    constraints = [x[known] == image[i][known] for i, x in enumerate(xs)]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve()
    return problem.value


def test_divergence_is_minus_adjoint_of_gradient():
    g = torch.Generator().manual_seed(0)
    x, ph, pv = (torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64) for _ in range(3))
    gh, gv = gradient(x)
    assert (gh * ph + gv * pv).sum().item() == pytest.approx(-(x * divergence(ph, pv)).sum().item())


@pytest.mark.parametrize("mask", [CenterMask(), RandomMask(), HalfMask()])
@pytest.mark.parametrize("channels", [1, 3])
def test_tv_reaches_the_convex_optimum(mask, channels):
    g = torch.Generator().manual_seed(channels)
    coarse = torch.rand(3, channels, 4, 4, generator=g)
    images = torch.nn.functional.interpolate(coarse, size=12, mode="bilinear", align_corners=False)
    known = make_masks(mask, "tv-test", mask.name, [0, 1, 2], 12, 12, 0)
    out, _ = tv_inpaint(images * known, known)  # float32, as the method runs
    assert torch.equal(out[known.expand_as(out)], images[known.expand_as(images)])  # constraints met
    ours = total_variation(out.double())
    for i in range(3):
        exact = _exact_tv(images[i].double().numpy(), known[i, 0].numpy())
        assert exact <= ours[i].item() <= exact * 1.01
