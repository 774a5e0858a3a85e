import pytest
import torch

from benchkit.builtins.methods.patchmatch import PatchMatch
from benchkit.builtins.methods.references import Biharmonic, Telea


def _flat_with_hole(value=0.7, channels=1):
    images = torch.full((2, channels, 16, 16), value)
    known = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    known[:, :, 5:11, 5:11] = False
    return images, known


@pytest.mark.parametrize("method", [Biharmonic(), Telea(), PatchMatch()])
@pytest.mark.parametrize("channels", [1, 3])
def test_hole_is_filled_from_the_known_pixels(method, channels):
    # if the mask polarity were wrong, the zeroed hole would be kept (0) or the known ring replaced
    images, known = _flat_with_hole(channels=channels)
    out = method.inpaint(images * known, known)
    assert out.shape == images.shape
    torch.testing.assert_close(out, images, atol=2 / 255, rtol=0)  # 8-bit rounding


def test_patchmatch_copies_texture_that_smooth_fills_lose():
    stripes = (torch.arange(32) // 2 % 2).float().view(1, 1, 1, 32).expand(1, 1, 32, 32).clone()
    known = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    known[:, :, 12:20, 12:20] = False
    pm = PatchMatch().inpaint(stripes * known, known)
    smooth = Biharmonic().inpaint(stripes * known, known)
    hole = ~known.expand_as(stripes)
    pm_error, smooth_error = ((x[hole] - stripes[hole]).abs().mean().item() for x in (pm, smooth))
    assert smooth_error > 0.4  # a smooth fill greys the stripes out
    assert pm_error < 0.5 * smooth_error  # PatchMatch copies them (seams blur the hole's edges)
