"""``dip``: Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, CVPR 2018) for inpainting.

A randomly initialised encoder-decoder ``f`` maps a fixed noise image ``z`` (32 channels, uniform
in [0, 0.1]) to an image; Adam fits it to the known pixels only, ``|| m * (f(z + n) - y) ||^2``
with fresh noise ``n`` of std ``reg_noise_std`` added to ``z`` at each step, and the output
``f(z)`` after ``iterations`` steps fills the hole: the network's structure, not training data,
is the prior. The network is the skip-less hourglass of the paper's inpainting setting
(DmitryUlyanov/deep-image-prior, ``inpainting.ipynb`` with ``models/skip.py``: stride-2 3x3
convolutions down, nearest upsampling, batch norm and LeakyReLU, a 1x1 convolution after each up
block, a sigmoid out), sized for the image: ``levels = log2(size) - 2`` (3 at 32 px, 5 from 128
px) and ``width`` channels at every level (the paper's 128; 32 by default here at 32 px). An image
whose sides are not multiples of ``2**levels`` is padded with unknown pixels to the next multiple
(the paper's notebook crops the image to a multiple of 32 instead) and the output cropped back.

Each image gets its own network and noise, seeded from the run's seed and the image's position.
The networks of a batch are trained together: their parameters are stacked and one
``torch.func.vmap`` over ``functional_call`` runs them all at once, Adam updating the stacked
tensors (Adam works element by element, so each network follows exactly its own trajectory).
"""
from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import nn

from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method, MethodContext
from benchkit.plugin.options import Range

INPUT_CHANNELS = 32


def block(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """Convolution (zero padding), batch norm over the image's own pixels, LeakyReLU(0.2)."""
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2),
            nn.BatchNorm2d(c_out, track_running_stats=False), nn.LeakyReLU(0.2)]


class Hourglass(nn.Module):
    """DIP's skip network without skip connections: ``levels`` times (3x3 stride 2, 3x3) down,
    then per level nearest x2 upsampling, batch norm, 3x3 and 1x1 up; 1x1 and sigmoid out."""

    def __init__(self, channels: int, levels: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = INPUT_CHANNELS
        for _ in range(levels):
            layers += block(c, width, 3, stride=2) + block(width, width, 3)
            c = width
        for _ in range(levels):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.BatchNorm2d(width, track_running_stats=False)]
            layers += block(width, width, 3) + block(width, width, 1)
        layers += [nn.Conv2d(width, channels, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def levels_for(size: int) -> int:
    """Down-sampling levels for a ``size`` px image: the coarsest map is 4 x 4 px, at most 5 levels."""
    return max(1, min(5, int(math.log2(size)) - 2))


def width_for(size: int) -> int:
    """Default channels per level for a ``size`` px image: 16 up to 32 px, doubling with the side, at most 128."""
    return int(min(128, max(16, 16 * 2 ** math.ceil(math.log2(max(size, 1) / 32)))))


def fit(images: torch.Tensor, known: torch.Tensor, seeds: list[int], iterations: int, lr: float,
        reg_noise_std: float, width: int) -> torch.Tensor:
    """Fit one network per image (``N x C x H x W`` in [0, 1], ``known`` ``N x 1 x H x W``), all at
    once; ``seeds`` one per image. Returns each network's output on its own noise image."""
    from torch.func import functional_call, stack_module_state, vmap

    levels = levels_for(min(images.shape[-2:]))
    images, known, crop = pad_to_multiple(images, known, 2**levels)
    n, channels, height, width_px = images.shape
    device = images.device
    streams = [torch.Generator().manual_seed(s) for s in seeds]
    nets, inputs = [], []
    for stream in streams:  # each network and its noise from the image's own stream
        with torch.random.fork_rng(devices=[]):  # the initialisation's draws leave the global generator alone
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=stream)))
            nets.append(Hourglass(channels, levels, width).to(device))
        inputs.append(torch.rand(1, INPUT_CHANNELS, height, width_px, generator=stream).mul_(0.1))
    z = torch.stack(inputs).to(device)  # N x 1 x 32 x H x W
    params, buffers = stack_module_state(nets)
    template = nets[0]

    def one(p, b, x):
        return functional_call(template, (p, b), (x,))

    run_all = vmap(one)
    optimizer = torch.optim.Adam(list(params.values()), lr=lr)
    mask = known.to(images.dtype).unsqueeze(1)
    target = images.unsqueeze(1)
    for _ in range(iterations):
        jitter = z
        if reg_noise_std > 0:
            noise = torch.stack([torch.randn(z.shape[1:], generator=g) for g in streams]).to(device)
            jitter = z + noise * reg_noise_std
        out = run_all(params, buffers, jitter)
        loss = ((out - target) * mask).pow(2).flatten(1).mean(1).sum()  # each image's own MSE, summed
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return run_all(params, buffers, z).squeeze(1)[crop]


def pad_to_multiple(images: torch.Tensor, known: torch.Tensor, multiple: int):
    """Images and masks padded (zeros, unknown: outside the loss) to sides that are multiples of
    ``multiple``, as the hourglass's downsampling needs, split evenly between the two sides; and
    the index that crops the network's output back to the images' size."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    top, left = pad_h // 2, pad_w // 2
    crop = (..., slice(top, top + height), slice(left, left + width))
    if not pad_h and not pad_w:
        return images, known, crop
    pad = (left, pad_w - left, top, pad_h - top)
    return torch.nn.functional.pad(images, pad), torch.nn.functional.pad(known, pad, value=False), crop


class DeepImagePrior(Method):
    """Deep Image Prior inpainting, one network per image, a batch of networks trained at once.

    Parameters
    ----------
    iterations : int
        Adam steps per image. 50 was chosen on 16 training images (``benchmarks/dip.py sweep``): at
        32 px the fill gets worse with more steps, as the network learns to reproduce the known
        pixels exactly and carries their detail into the hole as noise.
    lr : float
        Adam's learning rate (the paper's 0.01).
    reg_noise_std : float
        Std of the noise added to the input at each step (the paper's 0.03).
    width : int or None
        Channels at every level of the hourglass (the paper's 128); None: sized for the image
        (16 up to 32 px, doubling with the side up to 128).
    """

    name = "dip"
    seconds_per_image = 0.057  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "Deep Image Prior (Ulyanov et al. 2018): an untrained hourglass fitted to the known pixels"
    needs_cell = True  # not slow at its default: in the default run

    def __init__(self, iterations: Annotated[int, Range(1)] = 50,
                 lr: Annotated[float, Range(0, exclusive=True)] = 0.01,
                 reg_noise_std: Annotated[float, Range(0)] = 0.03,
                 width: Annotated[int, Range(1, 1024)] | None = None) -> None:
        self.iterations, self.lr, self.reg_noise_std, self.width = iterations, lr, reg_noise_std, width

    def setup(self, context: MethodContext) -> None:
        self.seed = context.seed

    def inpaint(self, images, known, mask: str = "", image_ids=()):
        seeds = self.image_seeds(self.seed, image_ids or range(len(images)))
        with torch.enable_grad():
            width = self.width or width_for(min(images.shape[-2:]))
            return fit(images, known, seeds, self.iterations, self.lr, self.reg_noise_std, width)


@hookimpl
def register_methods(register):
    register(DeepImagePrior)
