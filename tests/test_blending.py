import numpy as np
import torch

from benchkit.builtins.masks.basic import CenterMask, PatternMask, RandomMask
from benchkit.builtins.methods.blending import laplacian, poisson_blend
from benchkit.masking import make_masks


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    target, guide = torch.rand(3, 2, 16, 16, generator=g), torch.rand(3, 2, 16, 16, generator=g)
    known = torch.cat([make_masks(m, "b", m.name, [i], 16, 16, 0)
                       for i, m in enumerate((CenterMask(), PatternMask(), RandomMask()))])
    return target, guide, known


def test_poisson_equation_residual_and_constraints():
    target, guide, known = _setup()
    out = poisson_blend(guide.double(), target.double(), known)
    lap = laplacian(16, 16)
    for i in range(3):
        hole = ~known[i, 0].numpy().ravel()
        for c in range(2):
            x, g = out[i, c].numpy().ravel(), guide[i, c].double().numpy().ravel()
            residual = (lap @ x - lap @ g)[hole]
            assert np.abs(residual).max() <= 1e-6
        assert torch.equal(out[i][known[i].expand(2, -1, -1)], target[i].double()[known[i].expand(2, -1, -1)])


def test_blending_the_ground_truth_returns_it():
    target, _, known = _setup(1)
    torch.testing.assert_close(poisson_blend(target.double(), target.double(), known), target.double(),
                               atol=1e-10, rtol=0)


def test_adding_a_constant_to_the_guide_changes_nothing():
    target, guide, known = _setup(2)
    cache = {}
    a = poisson_blend(guide.double(), target.double(), known, cache)
    b = poisson_blend(guide.double() + 0.3, target.double(), known, cache)
    torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
