"""``gan``: semantic inpainting by latent search in a DCGAN (Yeh et al., CVPR 2017, Section 3).

For a corrupted image y with known-pixel mask M, search z in [-1, 1]^100 minimising

    L(z) = sum_i W_i |G(z)_i - y_i|  +  lambda * log(1 - D(G(z)))          (Eqs. 2, 4, 5)

where y is first mapped to G's output range [-1, 1], and W is the importance weight of Eq. 3:
W_i = (number of missing pixels in the window around i) / |N(i)| for known i, 0 for missing i. The
window is ``window`` x ``window`` (7 in the paper); at the image border N(i) holds only the window's
pixels that lie inside the image, so |N(i)| is smaller there and W_i is the *fraction* of in-image
neighbours that are missing. z starts uniform in [-1, 1], is optimised with Adam, and is clipped to
[-1, 1] in place after every step; 1500 iterations by default. G and D are in eval mode (BatchNorm
uses its running statistics) and their weights are frozen, so only z gets gradients.

Losses are summed over images, not averaged, and Adam acts element-wise, so an image's result does
not depend on the rest of its batch; its starting z is drawn from a generator seeded by the run seed
and the image's own corrupted pixels, so it does not depend on its batch position either.
Finally G(z) is Poisson-blended into y (Eq. 6) unless ``blend`` is false.

The paper does not give Adam's learning rate. The default, 0.03, was chosen by
``benchmarks/gan_tuning.py`` on 32 *training* images (never test images) with the center and random
masks, after 1500 iterations, from 0.01 / 0.03 / 0.1: center 19.89 / 20.04 / 19.97 dB, random
18.38 / 18.44 / 18.37 dB (with the model after one epoch of training).

Options beyond the paper: ``restarts`` K runs K independent starts per image and keeps the one with
the lowest final loss; ``precision="bf16"`` runs G and D under CPU/GPU bfloat16 autocast.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Annotated, Literal

import torch
import torch.nn.functional as F

from benchkit.builtins import SHIPPED_MODELS
from benchkit.builtins.methods.blending import poisson_blend
from benchkit.builtins.methods.graphs import repeat_step
from benchkit.builtins.nets.dcgan import Discriminator, Generator, train_gan
from benchkit.checkpoints import load_model, state_dict
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method, MethodContext, Trainer
from benchkit.plugin.options import Range


def importance_weights(known: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Eq. 3: for known pixels, the fraction of missing pixels among in-image window neighbours.

    ``known`` is ``N x 1 x H x W`` bool; returns ``N x 1 x H x W`` float32 (0 on missing pixels).
    An image with no missing pixel would get all-zero weights; it gets weight 1 everywhere instead
    (plain L1 projection onto the generator's range).
    """
    missing = (~known).to(torch.float32)
    fraction = F.avg_pool2d(missing, window, stride=1, padding=window // 2, count_include_pad=False)
    weights = fraction * known
    complete = known.flatten(1).all(1).view(-1, 1, 1, 1)
    return torch.where(complete, torch.ones_like(weights), weights)


def load_gan(path: Path, device: torch.device) -> tuple[Generator, Discriminator, dict]:
    """Build G and D from a ``gan-*.safetensors`` checkpoint, frozen, in eval mode."""
    tensors, info = load_model(path)
    try:
        gen = Generator(info["size"], info["channels"], info.get("nz", 100), info.get("width", 64))
        disc = Discriminator(info["size"], info["channels"], info.get("width", 64))
        gen.load_state_dict(state_dict(tensors, "generator"))
        disc.load_state_dict(state_dict(tensors, "discriminator"))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise UserError(f"checkpoint {path} does not hold a benchkit DCGAN ({exc}): train it again") from exc
    for net in (gen, disc):  # channels-last: faster steps on the CPU (benchmarks/latent_search.py)
        net.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
    return gen, disc, info


def initial_z(images: torch.Tensor, known: torch.Tensor, nz: int, restarts: int, seed: int) -> torch.Tensor:
    """``N*K x nz`` starts uniform in [-1, 1], seeded per image by (seed, its corrupted pixels, mask)."""
    starts = []
    for image, mask in zip(images.cpu(), known.cpu()):
        key = zlib.crc32(image.numpy().tobytes() + mask.numpy().tobytes())
        g = torch.Generator().manual_seed(Method.image_seeds(seed, [key])[0])
        starts.append(torch.rand(restarts, nz, generator=g) * 2 - 1)
    return torch.cat(starts).to(images.device)


def latent_search(gen: Generator, disc: Discriminator, images: torch.Tensor, known: torch.Tensor,
                  iterations: int = 1500, lr: float = 0.03, lam: float = 0.003, window: int = 7,
                  restarts: int = 1, seed: int = 0, precision: str = "fp32",
                  callback=None, graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Find z-hat for each image; returns (G(z-hat) in [-1, 1], final loss per image).

    ``images`` are ``N x C x H x W`` in [0, 1] (missing pixels may hold anything: their weight is 0).
    ``callback(step, z)``, if given, is called after every step with the clipped ``N*K x nz`` codes.
    On CUDA (unless ``graph`` is false) the steps after a short warm-up replay one captured CUDA
    graph (:mod:`benchkit.builtins.methods.graphs`); the search is the same step for step.
    """
    n = images.shape[0]
    target = (images * 2 - 1).repeat_interleave(restarts, 0)  # [0, 1] -> G's range [-1, 1]
    weights = importance_weights(known, window).repeat_interleave(restarts, 0)
    z = initial_z(images, known, gen.nz, restarts, seed).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr, capturable=images.device.type == "cuda")  # its state stays on the GPU
    autocast = torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        with autocast:
            fake = gen(z)
            logit = disc(fake)
        context = (weights * (fake.float() - target).abs()).flatten(1).sum(1)
        prior = -F.softplus(logit.float())  # log(1 - sigmoid(logit)) = log(1 - D(G(z)))
        return context + lam * prior, fake

    def step() -> None:
        loss, _ = losses()
        loss.sum().backward()  # summed per image: no image's gradient depends on another
        optimizer.step()
        with torch.no_grad():
            z.clamp_(-1, 1)

    repeat_step(step, lambda: optimizer.zero_grad(set_to_none=True), iterations, images.device,
                None if callback is None else (lambda i: callback(i, z.detach())), graph=graph)
    with torch.no_grad():
        loss, fake = losses()
    best = loss.view(n, restarts).argmin(1) + torch.arange(n, device=loss.device) * restarts
    return fake.float()[best], loss[best]


class GANInpainting(Method):
    """Yeh et al. 2017: latent search in a DCGAN, then Poisson blending.

    Parameters
    ----------
    iterations : int
        Adam steps of the latent search (the paper: 1500).
    lr : float
        Adam learning rate for z (not given by the paper; chosen on training images).
    lam : float
        Weight lambda of the prior loss log(1 - D(G(z))) (the paper: 0.003).
    window : int
        Side of the window of the importance weights, odd (the paper: 7).
    blend : bool
        Poisson-blend G(z) into the known pixels (the paper does).
    restarts : int
        Independent starts per image; the one with the lowest final loss is kept.
    precision : str
        fp32, or bf16 autocast for G and D.
    group : int or None
        Images searched together. Every search runs on exactly this many images (a partial group
        is padded with copies of its last image, whose results are dropped), because float rounding
        depends on the batch size and the non-convex search amplifies it: with a fixed group an
        image's result does not depend on its shard or batch. None: 16 on a CPU, 512 on a GPU (a
        cell of 512 images is then one group, with no padding).
    """

    name = "gan"
    seconds_per_image = 2.07  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "Yeh et al. 2017: DCGAN latent search (Adam, 1500 its, lambda 0.003) + Poisson blend"
    needs_checkpoint = "gan"
    checkpoint_dirs = SHIPPED_MODELS

    def __init__(self, iterations: Annotated[int, Range(0)] = 1500,
                 lr: Annotated[float, Range(0, exclusive=True)] = 0.03, lam: Annotated[float, Range(0)] = 0.003,
                 window: Annotated[int, Range(1, odd=True)] = 7, blend: bool = True,
                 restarts: Annotated[int, Range(1)] = 1, precision: Literal["fp32", "bf16"] = "fp32",
                 group: Annotated[int, Range(1)] | None = None) -> None:
        self.iterations, self.lr, self.lam, self.window = iterations, lr, lam, window
        self.blend, self.restarts, self.precision, self.group = blend, restarts, precision, group
        self._cache: dict = {}

    def preferred_batch_size(self, device, image_shape) -> int:
        """64 on a CPU; on a GPU, 4096 images of 32 x 32, fewer in proportion for larger images
        (1024 at 64 x 64), at least 64: the fastest batches by measurement (docs/guides/gpu.md,
        benchmarks/latent_search.py). Results do not depend on the batch."""
        if device.type == "cpu":
            return 64
        return max(64, min(4096, 4096 * 32 * 32 // (image_shape[1] * image_shape[2])))

    def setup(self, context: MethodContext) -> None:  # the runner has run check(): the shape fits
        self.gen, self.disc, _ = load_gan(context.checkpoint, context.device)
        self.seed = context.seed
        if self.group is None:
            self.group = 16 if context.device.type == "cpu" else 512

    def search(self, images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """G(z-hat) in [-1, 1] for each image, searched in groups of exactly ``self.group`` images."""
        group, n, fakes = self.group or len(images), len(images), []
        for start in range(0, n, group):
            x, k = images[start:start + group], known[start:start + group]
            pad = group - len(x)
            if pad:  # copies of the last image fill the group; their results are dropped
                x, k = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)]), torch.cat([k, k[-1:].expand(pad, -1, -1, -1)])
            fake, _ = latent_search(self.gen, self.disc, x, k, self.iterations, self.lr, self.lam, self.window,
                                    self.restarts, self.seed, self.precision)
            fakes.append(fake[:group - pad])
        return torch.cat(fakes)

    def inpaint(self, images, known):
        fake = self.search(images, known)
        guide = (fake + 1) / 2
        if self.blend:
            guide = poisson_blend(guide, images, known, self._cache)
        return guide.clamp(0, 1)


class DCGANTrainer(Trainer):
    """Trains the DCGAN the ``gan`` method searches (Radford et al. 2016; ``benchkit/builtins/nets/dcgan.py``).

    Parameters
    ----------
    width : int
        Channels of D's first and G's last convolution, doubling at each scale (DCGAN: 64).
    nz : int
        Size of the latent vector z (DCGAN: 100).
    lr : float
        Adam's learning rate (DCGAN: 2e-4).
    beta1 : float
        Adam's beta1 (DCGAN: 0.5).
    """

    name = "gan"
    description = "DCGAN for the gan method: Adam 2e-4, beta1 0.5, flips; writes gan-DATASET.safetensors"

    def __init__(self, width: Annotated[int, Range(8, 1024)] = 64, nz: Annotated[int, Range(1, 4096)] = 100,
                 lr: Annotated[float, Range(0, 1, exclusive=True)] = 2e-4,
                 beta1: Annotated[float, Range(0, 1)] = 0.5) -> None:
        self.width, self.nz, self.lr, self.beta1 = width, nz, lr, beta1

    def train(self, images, config, out, command, masks):
        return train_gan(images, config, Path(out), command, self.width, self.nz, self.lr, self.beta1)


@hookimpl
def register_methods(register):
    register(GANInpainting)


@hookimpl
def register_trainers(register):
    register(DCGANTrainer)
