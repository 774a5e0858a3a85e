import numpy as np
import pytest
from PIL import Image

from benchkit.builtins.masks.basic import CenterMask, FileMask, HalfMask, PatternMask, RandomMask
from benchkit.errors import UserError
from benchkit.masking import make_masks, mask_rng


def _masks(gen, n=200, size=32, seed=0, dataset="d", name="m"):
    return make_masks(gen, dataset, name, list(range(n)), size, size, seed)[:, 0].numpy()


def test_center_is_the_middle_quarter():
    known = CenterMask().known(32, 32, index=0, rng=None)
    assert (~known).sum() == 16 * 16
    assert not known[8:24, 8:24].any() and known[:8].all() and known[24:].all()


def test_random_misses_eighty_percent():
    missing = 1 - _masks(RandomMask()).mean()
    assert missing == pytest.approx(0.8, abs=0.01)


def test_pattern_misses_twenty_to_thirty_percent_in_blobs():
    masks = _masks(PatternMask())
    fractions = 1 - masks.mean(axis=(1, 2))
    assert fractions.min() >= 0.195 and fractions.max() <= 0.305
    assert fractions.std() > 0.02  # the fraction varies from image to image
    # blobs, not salt and pepper: most missing pixels have a missing right-hand neighbour
    missing = ~masks
    assert (missing[:, :, 1:] & missing[:, :, :-1]).sum() / missing[:, :, 1:].sum() > 0.8


def test_half_masks_cover_each_side():
    masks = _masks(HalfMask(), n=100)
    assert ((~masks).mean(axis=(1, 2)) == 0.5).all()
    sides = {(m[:, :16].all(), m[:, 16:].all(), m[:16].all(), m[16:].all()) for m in masks}
    assert len(sides) == 4


@pytest.mark.parametrize("gen", [RandomMask(), PatternMask(), HalfMask()])
def test_masks_are_deterministic_per_seed_dataset_and_index(gen):
    a = _masks(gen, n=20)
    np.testing.assert_array_equal(a, _masks(gen, n=20))
    assert not np.array_equal(a, _masks(gen, n=20, seed=1))
    assert not np.array_equal(a, _masks(gen, n=20, dataset="other"))
    # an image's mask does not depend on which other images are in the run
    later = make_masks(gen, "d", "m", [5, 19], 32, 32, 0)[:, 0].numpy()
    np.testing.assert_array_equal(later, a[[5, 19]])


def test_mask_rng_differs_by_mask_name():
    assert mask_rng(0, "d", "a", 0).random() != mask_rng(0, "d", "b", 0).random()


def test_file_masks_white_is_missing(tmp_path):
    hole = np.zeros((8, 8), np.uint8)
    hole[2:4, :] = 255
    Image.fromarray(hole).save(tmp_path / "a.png")
    Image.fromarray(255 - hole).save(tmp_path / "b.png")
    gen = FileMask(str(tmp_path))
    first = gen.known(16, 16, index=0, rng=None)
    assert (~first).sum() == 2 * 2 * 16 and not first[4:8].any()
    np.testing.assert_array_equal(gen.known(16, 16, index=1, rng=None), ~first)
    np.testing.assert_array_equal(gen.known(16, 16, index=2, rng=None), first)  # wraps around
    np.testing.assert_array_equal(FileMask(str(tmp_path), invert=True).known(16, 16, index=0, rng=None), ~first)


def test_file_masks_bad_folders(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        FileMask(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no .png masks"):
        FileMask(str(tmp_path))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read mask"):
        FileMask(str(tmp_path)).known(8, 8, index=0, rng=None)
