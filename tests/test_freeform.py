"""Free-form masks (LaMa's thin / medium / thick strokes and boxes), scaled to the image size."""
import numpy as np
import pytest

from benchkit.builtins.freeform import REFERENCE_SIZE, stroke
from benchkit.plugin.registry import Registry
from benchkit.run.masking import make_masks

REGISTRY = Registry(block_external=True)


def masks(name, n=64, size=64, seed=0, dataset="d"):
    return make_masks(REGISTRY.create("mask", name), dataset, name, list(range(n)), size, size, seed)[:, 0].numpy()


def test_stroke_rasterises_a_thick_segment():
    missing = np.zeros((12, 30), bool)
    stroke(missing, 5.0, 3.0, 5.0, 20.0, 3.0)  # horizontal, width 3: pixel centres within 1.5 px
    expected = np.zeros_like(missing)
    expected[4:7, 3:21] = True  # |y - 5| <= 1.5 along the segment
    expected[4:7, [2, 21]] = True  # the round caps: sqrt(dy^2 + 1) <= 1.5 for dy in -1, 0, 1; x 1 and 22 are 2 px away
    np.testing.assert_array_equal(missing, expected)


@pytest.mark.parametrize("name", ["thin", "medium", "thick", "box"])
def test_free_form_masks_keep_lamas_hole_range_and_reproduce(name):
    known = masks(name)
    hole = 1 - known.reshape(len(known), -1).mean(1)
    assert (hole > 0).all() and (hole <= 0.7).all()
    np.testing.assert_array_equal(known, masks(name))
    assert not np.array_equal(known, masks(name, seed=1))


def test_thick_masks_cover_more_than_medium_ones_and_thin_strokes_are_thin():
    mean_hole = {n: 1 - masks(n, n=128).mean() for n in ("medium", "thick")}
    assert mean_hole["medium"] < mean_hole["thick"]
    from scipy import ndimage

    # brush width: the 95th percentile of the distance to the hole's edge, at 256 px (thin brushes are at
    # most 14 px wide, so about 7 px; thick ones up to 104 px)
    depth = {n: np.mean([np.percentile(ndimage.distance_transform_edt(~k)[~k], 95)
                         for k in masks(n, n=8, size=REFERENCE_SIZE)]) for n in ("thin", "thick")}
    assert depth["thin"] <= 9 and depth["thick"] > 2.5 * depth["thin"]  # overlapping strokes add a little


def test_box_masks_are_rectangles_away_from_the_border():
    for known in masks("box", n=32, size=REFERENCE_SIZE // 4):
        missing = ~known
        margin = round(10 * 64 / REFERENCE_SIZE)  # 10 px at 256 px, scaled to 64 px
        assert not missing[:margin].any() and not missing[:, :margin].any()
        rows, cols = np.flatnonzero(missing.any(1)), np.flatnonzero(missing.any(0))
        assert missing[rows.min():rows.max() + 1, cols.min():cols.max() + 1].mean() > 0.3  # filled shapes, no strokes


def test_listed():
    assert {"thin", "medium", "thick", "box"} <= set(REGISTRY.names("mask"))
