"""Built-in metrics, per image and batched: ``psnr``, ``ssim``, ``l1`` and ``psnr_hole``.

All take images in [0, 1] (data range 1) and compute in float64.

PSNR of every kind is capped at :data:`PSNR_CAP_DB` (the MSE floored at ``10**-10``): an exact fill
scores 100 dB, not +inf, so every image enters a mean, a paired comparison and a hole-area bin with
the same value. Left out (as scikit-image's +inf would be), exact fills made a method's mean rest on
its imperfect images only while near-exact fills of another (80 dB and more, from float rounding)
stayed in, and the summary named a winner its own paired statistics contradicted.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import ImageMetric

DATA_RANGE = 1.0
PSNR_CAP_DB = 100.0  # the PSNR of an exact fill: MSE floored at data_range**2 * 10**-10


def psnr_from_mse(mse: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """10 log10(data_range^2 / MSE) in dB, capped at :data:`PSNR_CAP_DB` (NaN stays NaN)."""
    floor = data_range**2 * 10 ** (-PSNR_CAP_DB / 10)
    return 10 * torch.log10(data_range**2 / torch.clamp(mse, min=floor))


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image, 10 log10(data_range^2 / MSE), capped at
    :data:`PSNR_CAP_DB`: identical images give 100 dB."""
    mse = (prediction.double() - target.double()).pow(2).flatten(1).mean(1)
    return psnr_from_mse(mse, data_range)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    """1-D Gaussian weights of radius int(truncate*sigma + 0.5), summing to 1 (as scipy's filter)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


SSIM_ELEMENTS = 2**19  # input elements per strip: bounded memory whatever the image size, cache-sized pieces


def ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = DATA_RANGE,
         sigma: float = 1.5, max_elements: int = SSIM_ELEMENTS) -> torch.Tensor:
    """Mean structural similarity of each image (Wang et al. 2004), averaged over channels.

    Gaussian window with ``sigma`` = 1.5 (11x11), K1 = 0.01, K2 = 0.03, population (not sample)
    covariances, averaged over the pixels where the whole window fits inside the image. This matches
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=0)``.

    The SSIM map is computed in horizontal strips of about ``max_elements`` input values (each strip
    with the window's overlap), so memory stays bounded for large images; the result is the same.
    """
    x, y = prediction.double(), target.double()
    n, c, h, w = x.shape
    win = gaussian_window(sigma)
    k = win.numel()
    if h < k or w < k:
        raise ValueError(f"SSIM needs images of at least {k}x{k} pixels, got {h}x{w}")
    kernel_h = win.view(1, 1, k, 1).repeat(c, 1, 1, 1)
    kernel_w = win.view(1, 1, 1, k).repeat(c, 1, 1, 1)

    def blur(z: torch.Tensor) -> torch.Tensor:  # separable 'valid' Gaussian filter per channel
        return F.conv2d(F.conv2d(z, kernel_h, groups=c), kernel_w, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    rows_out = h - k + 1
    step = max(1, max_elements // (n * c * w) - (k - 1))
    total = torch.zeros(n, c, dtype=torch.float64, device=x.device)
    for top in range(0, rows_out, step):
        xs, ys = x[:, :, top:min(top + step, rows_out) + k - 1], y[:, :, top:min(top + step, rows_out) + k - 1]
        mu_x, mu_y = blur(xs), blur(ys)
        var_x = blur(xs * xs) - mu_x**2
        var_y = blur(ys * ys) - mu_y**2
        cov = blur(xs * ys) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        total += ssim_map.sum(dim=(2, 3))
    return (total / (rows_out * (w - k + 1))).mean(dim=1)


def hole_errors(prediction: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``N x (C*H*W)`` float64 errors with known pixels masked out (NaN), for hole-only metrics."""
    diff = prediction.double() - target.double()
    missing = (~known).expand_as(diff)
    return torch.where(missing, diff, torch.nan).flatten(1)


class PSNR(ImageMetric):
    name = "psnr"
    description = "PSNR (dB) of the whole composited image, data range 1"
    unit, digits = "dB", 2

    def score(self, prediction, target, known):
        return psnr(prediction, target)


class SSIM(ImageMetric):
    name = "ssim"
    description = "SSIM of the whole image: Gaussian window sigma 1.5, population covariance"
    min_size = gaussian_window().numel()  # 11: the window must fit in the image

    def score(self, prediction, target, known):
        return ssim(prediction, target)


class HoleL1(ImageMetric):
    name = "l1"
    description = "mean absolute error on the missing pixels only (intensity in [0, 1])"
    higher_is_better = False

    def score(self, prediction, target, known):
        return hole_errors(prediction, target, known).abs().nanmean(1)


class HolePSNR(ImageMetric):
    name = "psnr_hole"
    description = "PSNR (dB) on the missing pixels only, data range 1"
    unit, digits = "dB", 2

    def score(self, prediction, target, known):
        return psnr_from_mse(hole_errors(prediction, target, known).pow(2).nanmean(1))


def raw_output(batch, metric: str) -> torch.Tensor:
    """The methods' raw outputs of a batch, for a ``needs_raw_output`` metric (only a run has them)."""
    if batch.raw is None:
        raise ValueError(f"{metric} needs the methods' raw outputs, which only `benchkit run` has")
    return batch.raw


class KnownChange(ImageMetric):
    """How much a method changed the *known* pixels of its input, before the composite pastes them
    back: mean absolute error (``known-l1``) or PSNR in dB (``known-psnr``) of its raw output on the
    known pixels. 0 and 100 dB (the cap) for a method that keeps them; diffusion pipelines are known to alter
    them. Needs the raw outputs, which only a run has (not ``benchkit score``)."""

    name = "known-l1"
    description = "mean absolute change of the known pixels by the method's raw output (before the composite)"
    higher_is_better = False
    needs_raw_output = True

    def errors(self, batch) -> torch.Tensor:
        """``N x (C*H*W)`` raw-output errors on the known pixels (NaN elsewhere)."""
        return hole_errors(raw_output(batch, self.name), batch.target, ~batch.known)

    def score_batch(self, batch) -> torch.Tensor:  # the raw output is in the batch, not in score()'s arguments
        return self.errors(batch).abs().nanmean(1)


class KnownChangePSNR(KnownChange):
    name = "known-psnr"
    description = "PSNR (dB) of the method's raw output on the known pixels (before the composite)"
    higher_is_better = True
    unit, digits = "dB", 2

    def score_batch(self, batch) -> torch.Tensor:
        return psnr_from_mse(self.errors(batch).pow(2).nanmean(1))


class KnownChangeMSE(KnownChange):
    """Mean squared error of the raw output on the known pixels, per value (over pixels and channels).
    BrushBench's ``calculate_mse`` divides the same sum by the known pixels only, not by pixels times
    channels: its value is C times this one on C-channel images."""

    name = "known-mse"
    description = "mean squared change of the known pixels by the method's raw output (before the composite)"
    digits = 5

    def score_batch(self, batch) -> torch.Tensor:
        return self.errors(batch).pow(2).nanmean(1)


@hookimpl
def register_metrics(register):
    for cls in (PSNR, SSIM, HoleL1, HolePSNR, KnownChange, KnownChangePSNR, KnownChangeMSE):
        register(cls)
