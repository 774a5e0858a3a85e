"""DCGAN generator and discriminator (Radford et al. 2016) for 32, 64 and 128 px images.

The generator maps ``z`` in ``[-1, 1]^nz`` to an image in ``[-1, 1]`` (Tanh). The discriminator
returns one logit per image (D(x) = sigmoid(logit) is the probability that x is real).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

SIZES = (32, 64, 128)


def _levels(size: int) -> int:
    if size not in SIZES:
        raise ValueError(f"DCGAN image size must be one of {SIZES}, not {size}")
    return int(math.log2(size)) - 2  # number of stride-2 layers between 4x4 and size x size


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02); BN scale ~ N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (N x nz) -> 4x4 -> ... -> size x size image with ``channels`` channels, Tanh output."""

    def __init__(self, size: int = 32, channels: int = 1, nz: int = 100, width: int = 64) -> None:
        super().__init__()
        levels = _levels(size)
        self.size, self.channels, self.nz, self.width = size, channels, nz, width
        ch = width * 2 ** (levels - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(levels - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.nz, 1, 1))


class Discriminator(nn.Module):
    """Image in [-1, 1] -> one logit. Strided convs, LeakyReLU 0.2, BN on all but the first layer."""

    def __init__(self, size: int = 32, channels: int = 1, width: int = 64) -> None:
        super().__init__()
        levels = _levels(size)
        self.size, self.channels, self.width = size, channels, width
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(levels - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2),
                       nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(x.shape[0])


def sample_z(n: int, nz: int = 100, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw latent codes uniformly from [-1, 1]^nz, as in the paper: from ``generator`` (on the CPU),
    or without one from ``device``'s own generator, so a GPU draws them where they are used."""
    if generator is None:
        return torch.rand(n, nz, device=device).mul_(2).sub_(1)
    return torch.rand(n, nz, generator=generator).mul_(2).sub_(1).to(device)


def train_gan(images: torch.Tensor, config, out: Path, command: str, width: int = 64, nz: int = 100,
              lr: float = 2e-4, beta1: float = 0.5) -> Path:
    """Train (or resume training) a DCGAN on ``images`` (N x C x H x W, float32 in [0, 1] or uint8).

    Non-saturating GAN losses; D sees a real and a generated batch per step. ``config`` is a
    :class:`benchkit.builtins.training.loop.TrainConfig`. Returns the path of the ``.safetensors`` model.
    """
    import torch.nn.functional as F

    from benchkit.builtins.training.loop import TrainingLoop
    from benchkit.imaging import grid

    device = torch.device(config.device)
    _, channels, size, _ = images.shape
    torch.manual_seed(config.seed)
    gen = Generator(size, channels, nz, width).to(device)
    disc = Discriminator(size, channels, width).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr, betas=(beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr, betas=(beta1, 0.999))
    trainer = TrainingLoop("gan", images, config, out, command, {"generator": gen, "discriminator": disc},
                           {"opt_g": opt_g, "opt_d": opt_d}, {"width": width, "nz": nz, "lr": lr, "beta1": beta1})
    fixed_z = sample_z(64, nz, torch.Generator().manual_seed(config.seed), device)
    ones = torch.ones(config.batch_size, device=device)
    zeros = torch.zeros(config.batch_size, device=device)

    def step(real: torch.Tensor, index: int) -> dict[str, float]:
        fake = gen(sample_z(config.batch_size, nz, device=device))
        loss_d = (F.binary_cross_entropy_with_logits(disc(real), ones)
                  + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(disc(fake), ones)  # non-saturating G loss
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    gen.train(), disc.train()
    return trainer.fit(step, lambda: grid(gen(fixed_z).add(1).div(2)))
