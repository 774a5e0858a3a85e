import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchkit.builtins.metrics.pixel import HoleL1, HolePSNR, psnr, ssim


def _pairs(channels, size=32, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, channels, size, size, generator=g)
    noise = torch.randn(n, channels, size, size, generator=g) * torch.linspace(0.02, 0.3, n).view(n, 1, 1, 1)
    return (target + noise).clamp(0, 1), target


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_matches_skimage(channels):
    pred, target = _pairs(channels)
    expected = [peak_signal_noise_ratio(t.numpy(), p.numpy(), data_range=1) for p, t in zip(pred, target)]
    np.testing.assert_allclose(psnr(pred, target).numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels,size", [(1, 32), (3, 32), (3, 17), (1, 64)])
def test_ssim_matches_skimage(channels, size):
    pred, target = _pairs(channels, size)
    expected = [structural_similarity(p.numpy().astype(np.float64), t.numpy().astype(np.float64),
                                      gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=1, channel_axis=0) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ssim(pred, target).numpy(), expected, rtol=0, atol=1e-5)


def test_ssim_of_identical_images_is_one():
    x = torch.rand(2, 3, 16, 16)
    np.testing.assert_allclose(ssim(x, x).numpy(), 1.0, atol=1e-12)


def test_hole_metrics_by_hand():
    target = torch.zeros(1, 1, 2, 2)
    pred = torch.tensor([[[[0.5, 0.1], [0.2, 0.0]]]])
    known = torch.tensor([[[[False, True], [False, True]]]])
    # missing pixels: errors 0.5 and 0.2 -> L1 0.35, MSE (0.25 + 0.04) / 2 = 0.145
    assert HoleL1().score(pred, target, known).item() == pytest.approx(0.35)
    assert HolePSNR().score(pred, target, known).item() == pytest.approx(10 * np.log10(1 / 0.145))
