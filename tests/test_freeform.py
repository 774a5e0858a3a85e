"""Free-form masks: LaMa's thin / medium / thick by LaMa's procedure, benchkit's own boxes."""
import numpy as np
import pytest

from benchkit.builtins.masks.lama import CONFIGS, lama_mask
from benchkit.masking import make_masks
from benchkit.plugin.registry import Registry
from tests.lama_reference import make as reference_mask

REGISTRY = Registry(block_external=True)


def masks(name, n=64, size=64, seed=0, dataset="d"):
    return make_masks(REGISTRY.create("mask", name), dataset, name, list(range(n)), size, size, seed)[:, 0].numpy()


@pytest.mark.parametrize("kind, n", [("thin", 1500), ("medium", 1500), ("thick", 1500)])
def test_lama_masks_at_256_px_are_the_published_procedure_s(kind, n):
    """With the same random state, every mask equals the one of the procedure written out from
    LaMa's configs and scripts (tests/lama_reference.py); none has more than half missing, and the
    share of box-only masks is the procedure's."""
    holes, boxes_only = [], 0
    for seed in range(n):
        expected, made_by = reference_mask(kind, seed)
        got = lama_mask(256, 256, CONFIGS[kind][256], np.random.RandomState(seed))
        np.testing.assert_array_equal(got, expected > 0.5, err_msg=f"{kind}, seed {seed}")
        holes.append(got.mean())
        boxes_only += made_by == "boxes"
    holes = np.asarray(holes)
    assert holes.max() <= 0.5 and holes.min() > 0
    if kind == "thin":
        assert boxes_only == 0
    else:  # one generator kind per mask: boxes alone in about 0.3 / 1.3 of the draws (more once the cap has
        assert 0.15 < boxes_only / n < 0.5  # dropped large stroke masks); strokes plus boxes would give none


@pytest.mark.parametrize("name", ["thin", "medium", "thick", "box"])
def test_free_form_masks_keep_their_hole_range_and_reproduce(name):
    known = masks(name)
    hole = 1 - known.reshape(len(known), -1).mean(1)
    assert (hole > 0).all() and (hole <= (0.7 if name == "box" else 0.5)).all()
    np.testing.assert_array_equal(known, masks(name))
    assert not np.array_equal(known, masks(name, seed=1))


def test_the_config_follows_the_image_size_and_can_be_chosen():
    """256 px and smaller: the 256 px config (scaled); larger: the 512 px one. At 512 px the 512 px
    config is the procedure unscaled: the same random state gives the same strokes as at scale 1."""
    generator = REGISTRY.create("mask", "thick")
    rng = lambda: np.random.default_rng(5)  # noqa: E731
    seed = int(np.random.default_rng(5).integers(2**32))
    at_512 = ~generator.known(512, 512, index=0, rng=rng())
    np.testing.assert_array_equal(at_512, lama_mask(512, 512, CONFIGS["thick"][512], np.random.RandomState(seed)))
    forced = ~REGISTRY.create("mask", "thick[config=256]").known(512, 512, index=0, rng=rng())
    np.testing.assert_array_equal(forced, lama_mask(512, 512, CONFIGS["thick"][256], np.random.RandomState(seed),
                                                    scale=2.0))
    small = [1 - k.mean() for k in masks("thick", n=200, size=28)]
    assert 0.1 < np.mean(small) < 0.45  # scaled down, the areas stay those of the 256 px masks in spread


def test_thin_strokes_are_thinner_than_thick_ones():
    from scipy import ndimage

    depth = {n: np.mean([np.percentile(ndimage.distance_transform_edt(~k)[~k], 95)
                         for k in masks(n, n=8, size=256)]) for n in ("thin", "thick")}
    assert depth["thin"] <= 9 and depth["thick"] > 2.5 * depth["thin"]


def test_box_masks_are_rectangles_away_from_the_border():
    for known in masks("box", n=32, size=64):
        missing = ~known
        margin = round(10 * 64 / 256)  # 10 px at 256 px, scaled to 64 px
        assert not missing[:margin].any() and not missing[:, :margin].any()
        rows, cols = np.flatnonzero(missing.any(1)), np.flatnonzero(missing.any(0))
        assert missing[rows.min():rows.max() + 1, cols.min():cols.max() + 1].mean() > 0.3  # filled shapes, no strokes


def test_listed():
    assert {"thin", "medium", "thick", "box"} <= set(REGISTRY.names("mask"))
