"""MAT's masks by MAT's procedure."""
import numpy as np
import pytest

from benchkit.builtins.masks.mat import COUNTS, mat_mask
from benchkit.errors import UserError
from benchkit.masking import make_masks
from benchkit.plugin.registry import Registry
from tests.mat_reference import make as reference_mask

REGISTRY = Registry(block_external=True)


@pytest.mark.parametrize("kind, size, n", [("large", 256, 200), ("small", 256, 200), ("large", 512, 40),
                                           ("small", 512, 40)])
def test_mat_masks_are_the_published_procedure_s(kind, size, n):
    """With the same random state, each mask equals the procedure written out from MAT's
    generators (tests/mat_reference.py)."""
    for seed in range(n):
        expected_hole = reference_mask(COUNTS[kind][size], seed, size) == 0
        np.testing.assert_array_equal(mat_mask(size, COUNTS[kind][size], np.random.RandomState(seed)),
                                      expected_hole, err_msg=f"{kind} {size} px, seed {seed}")


def test_the_hole_range_rejects_as_mat_does():
    for seed in range(30):
        expected_hole = reference_mask(COUNTS["large"][256], seed, 256, hole_range=(0.3, 0.5)) == 0
        got = mat_mask(256, COUNTS["large"][256], np.random.RandomState(seed), hole_range=(0.3, 0.5))
        np.testing.assert_array_equal(got, expected_hole)
        assert 0.3 < got.mean() < 0.5


def test_large_masks_cover_more_than_small_ones_at_any_size():
    for size in (28, 64):
        holes = {name: 1 - make_masks(REGISTRY.create("mask", name), "d", name, list(range(64)), size, size,
                                      0).float().mean().item() for name in ("mat-large", "mat-small")}
        assert 0 < holes["mat-small"] < holes["mat-large"] < 1


def test_an_empty_hole_range_is_refused():
    with pytest.raises(UserError, match="hole_min 0.6 must be below hole_max 0.4"):
        REGISTRY.create("mask", "mat-large[hole_min=0.6,hole_max=0.4]")
