"""Context Encoder (Pathak et al. 2016) for 32, 64 and 128 px images.

Encoder: 4x4 stride-2 convolutions (LeakyReLU 0.2, BatchNorm from the second layer) down to 4x4,
then a 4x4 convolution to a ``bottleneck``-channel 1x1 code. Decoder: a 4x4 transposed convolution
back to 4x4, then 4x4 stride-2 transposed convolutions (BatchNorm, ReLU) up to the full image,
Tanh output in [-1, 1]. The original uses a 4000-channel bottleneck at 128 px; here it scales with
the image side, ``4000 * size / 128`` (1000 at 32 px, 2000 at 64 px), unless given.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchkit.builtins.nets.dcgan import _levels, init_weights


def default_bottleneck(size: int) -> int:
    """Bottleneck channels scaled from the original 4000 at 128 px to the image side."""
    return 4000 * size // 128


class ContextEncoder(nn.Module):
    """Image (N x C x H x W in [-1, 1], holes pre-filled) -> full image in [-1, 1]."""

    def __init__(self, size: int = 32, channels: int = 1, width: int = 64, bottleneck: int | None = None):
        super().__init__()
        levels = _levels(size)
        self.size, self.channels, self.width = size, channels, width
        self.bottleneck = bottleneck or default_bottleneck(size)
        enc: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(levels - 1):
            enc += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        enc += [nn.Conv2d(ch, self.bottleneck, 4, 1, 0, bias=False), nn.BatchNorm2d(self.bottleneck),
                nn.LeakyReLU(0.2, True)]
        dec: list[nn.Module] = [nn.ConvTranspose2d(self.bottleneck, ch, 4, 1, 0, bias=False),
                                nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(levels - 1):
            dec += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        dec += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.apply(init_weights)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def prefill(images: torch.Tensor, known: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """The Context Encoder's input: known pixels kept, missing ones set to the dataset's mean colour.

    ``fill`` holds one value per channel, in [0, 1]. No missing pixel keeps its original value.
    """
    return torch.where(known, images, fill.view(1, -1, 1, 1).to(images))


def hole_weights(known: torch.Tensor, overlap: int = 0, overlap_weight: float = 10.0) -> torch.Tensor:
    """Per-pixel weights of the reconstruction loss: 1 in the hole, ``overlap_weight`` on the known
    pixels within ``overlap`` px of it (the original's heavier overlap band), 0 elsewhere."""
    hole = (~known).float()
    if overlap <= 0:
        return hole
    near = F.max_pool2d(hole, 2 * overlap + 1, stride=1, padding=overlap)
    return hole + overlap_weight * (near - hole)


def train_ce(images: torch.Tensor, mask_generators: dict, config, out, command: str,
             overlap: int = 0, bottleneck: int | None = None, width: int = 64, lr: float = 2e-4, beta1: float = 0.5):
    """Train (or resume) a Context Encoder on ``images`` (N x C x H x W, float32 in [0, 1] or uint8)
    with masks from the given generators.

    Each training image gets the masks in turn (image k of the stream uses mask k mod count), drawn
    from a seed stream disjoint from the test one: dataset key ``"train:" + dataset`` and seed
    ``config.seed + 1_000_000``. Loss: 0.999 * weighted L2 on the hole (see :func:`hole_weights`)
    + 0.001 * adversarial (non-saturating), with a DCGAN discriminator on the output image.
    """
    from benchkit.builtins.nets.dcgan import Discriminator
    from benchkit.builtins.training.loop import TrainingLoop, as_float, channel_means
    from benchkit.imaging import grid
    from benchkit.masking import make_masks

    device = torch.device(config.device)
    _, channels, size, _ = images.shape
    torch.manual_seed(config.seed)
    net = ContextEncoder(size, channels, width, bottleneck).to(device)
    disc = Discriminator(size, channels, width).to(device)
    opt_g = torch.optim.Adam(net.parameters(), lr, betas=(beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr, betas=(beta1, 0.999))
    fill = channel_means(images)
    trainer = TrainingLoop("ce", images, config, out, command, {"encoder": net, "discriminator": disc},
                      {"opt_g": opt_g, "opt_d": opt_d},
                      {"fill": fill.tolist(), "bottleneck": net.bottleneck, "overlap": overlap, "width": width,
                       "lr": lr, "beta1": beta1,
                       "masks": list(mask_generators)})
    names = list(mask_generators)
    ones = torch.ones(config.batch_size, device=device)
    zeros = torch.zeros(config.batch_size, device=device)

    def masks_for(index: int) -> torch.Tensor:
        ids = range(index * config.batch_size, (index + 1) * config.batch_size)
        rows = [make_masks(mask_generators[names[k % len(names)]], f"train:{config.dataset}",
                           names[k % len(names)], [k], size, size, config.seed + 1_000_000) for k in ids]
        return torch.cat(rows).to(device)

    def step(real: torch.Tensor, index: int) -> dict[str, float]:
        known = masks_for(index)
        inputs = prefill((real + 1) / 2, known, fill) * 2 - 1
        output = net(inputs)
        loss_d = (F.binary_cross_entropy_with_logits(disc(real), ones)
                  + F.binary_cross_entropy_with_logits(disc(output.detach()), zeros))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        weights = hole_weights(known, overlap)
        rec = (weights * (output - real).pow(2)).flatten(1).sum(1) / weights.flatten(1).sum(1).clamp(min=1)
        loss = 0.999 * rec.mean() + 0.001 * F.binary_cross_entropy_with_logits(disc(output), ones)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        return {"loss_d": loss_d.detach(), "rec": rec.detach().mean()}

    preview_real = as_float(images[:16]).to(device)  # fewer when the training set is tiny
    preview_known = torch.cat([make_masks(mask_generators[names[k % len(names)]], "preview", names[k % len(names)],
                                          [k], size, size, 0) for k in range(len(preview_real))]).to(device)

    def picture() -> torch.Tensor:
        inputs = prefill(preview_real, preview_known, fill)
        output = torch.where(preview_known, preview_real, (net(inputs * 2 - 1) + 1) / 2)
        return grid(torch.cat([inputs, output]), ncols=16)

    net.train(), disc.train()
    return trainer.fit(step, picture)
