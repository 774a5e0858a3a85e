"""A small unconditional DDPM (Ho et al., NeurIPS 2020) on diffusers' ``UNet2DModel`` and
``DDPMScheduler``: ``benchkit train ddpm`` and the ``repaint`` method (:mod:`benchkit.builtins.methods.repaint`).

The network predicts the noise ``eps`` of ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` (images in
[-1, 1]), trained with the mean squared error over uniformly drawn ``t`` of a linear beta schedule
(1e-4 to 0.02 over 1000 steps, the DDPM paper's). An exponential moving average of the weights (the
DDPM paper's practice) is what the shipped model holds. Sampling uses the scheduler's step with
fewer, evenly spaced ("leading") timesteps: the posterior of the respaced chain, its variance the
"fixed small" one, the predicted ``x_0`` clipped to [-1, 1].

diffusers is an extra: ``pip install 'benchkit[diffusion]'``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F

from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Trainer
from benchkit.plugin.options import Range

TRAIN_STEPS = 1000
INSTALL = "pip install 'benchkit[diffusion]'"


def diffusers():
    """The diffusers module, importable beside a torchvision that does not match the installed torch
    (diffusers imports torchvision when it finds one; UNet2DModel needs none of it)."""
    import importlib.util

    if importlib.util.find_spec("diffusers") is None:
        raise UserError(f"the DDPM needs diffusers: {INSTALL}")
    try:
        import torchvision  # noqa: F401
    except Exception:  # a torchvision built for another torch fails while registering its operators
        import diffusers.utils.import_utils as flags

        flags._torchvision_available = False
    import diffusers as module

    return module


def make_unet(size: int, channels: int, width: int):
    """The noise predictor: a diffusers ``UNet2DModel`` of three levels (``width``, 2 ``width``,
    2 ``width`` channels, one residual block each, self-attention at the lowest resolution)."""
    return diffusers().UNet2DModel(
        sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1, norm_num_groups=8,
        block_out_channels=(width, 2 * width, 2 * width),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))


def make_scheduler():
    """The linear beta schedule of the DDPM paper, ``fixed_small`` variance, clipped ``x_0``."""
    return diffusers().DDPMScheduler(num_train_timesteps=TRAIN_STEPS, beta_schedule="linear",
                                     variance_type="fixed_small", clip_sample=True)


@torch.no_grad()
def sample(unet, scheduler, shape, steps: int, generator: torch.Generator, device) -> torch.Tensor:
    """Plain ancestral sampling with ``steps`` timesteps: ``N x C x H x W`` in [0, 1]."""
    scheduler.set_timesteps(steps)
    x = torch.randn(shape, generator=generator).to(device)
    for t in scheduler.timesteps:
        eps = unet(x, t.to(device)).sample
        x = scheduler.step(eps, t, x, generator=generator).prev_sample
    return (x.clamp(-1, 1) + 1) / 2


class DDPMTrainer(Trainer):
    """Trains the ``repaint`` method's DDPM: ``benchkit train ddpm --dataset D`` writes ``ddpm-D.safetensors``.

    Parameters
    ----------
    width : int
        Channels of the UNet's first level (the next two have twice as many).
    ema : float
        Decay of the moving average of the weights that the model file keeps.
    lr : float
        Adam's learning rate (betas 0.9, 0.999).
    """

    name = "ddpm"
    requires = ("diffusers",)
    install_hint = INSTALL
    description = "unconditional DDPM (diffusers UNet2DModel) for the repaint method; writes ddpm-DATASET.safetensors"

    def __init__(self, width: Annotated[int, Range(8, 512)] = 16,
                 ema: Annotated[float, Range(0, 1, exclusive=True)] = 0.999,
                 lr: Annotated[float, Range(0, 1, exclusive=True)] = 5e-4) -> None:
        self.width, self.ema_decay, self.lr = width, ema, lr

    def train(self, images, config, out, command, masks):
        from benchkit.builtins.training.loop import TrainingLoop

        device = torch.device(config.device)
        torch.manual_seed(config.seed)
        unet = make_unet(images.shape[-1], images.shape[1], self.width).to(device)
        ema = copy.deepcopy(unet).requires_grad_(False)
        scheduler = make_scheduler()
        opt = torch.optim.Adam(unet.parameters(), lr=self.lr)
        info = {"width": self.width, "ema": self.ema_decay, "train_timesteps": TRAIN_STEPS, "beta_schedule": "linear",
                "prediction": "epsilon", "weights": "ema", "optimizer": f"Adam lr {self.lr}, betas (0.9, 0.999)",
                "parameters": sum(p.numel() for p in unet.parameters())}
        loop = TrainingLoop("ddpm", images, config, Path(out), command, {"unet": unet, "ema": ema}, {"opt": opt}, info)
        noise_source = torch.Generator().manual_seed(config.seed + loop.progress["images_seen"])
        alphas = scheduler.alphas_cumprod.to(device)

        def step(real: torch.Tensor, index: int) -> dict:
            t = torch.randint(0, TRAIN_STEPS, (len(real),), generator=noise_source).to(device)
            noise = torch.randn(real.shape, generator=noise_source).to(device)
            abar = alphas[t].view(-1, 1, 1, 1)
            noisy = abar.sqrt() * real + (1 - abar).sqrt() * noise
            loss = F.mse_loss(unet(noisy, t).sample, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for average, current in zip(ema.parameters(), unet.parameters()):
                    average.lerp_(current, 1 - self.ema_decay)
            return {"loss": loss.detach()}

        def picture() -> torch.Tensor:
            from benchkit.imaging import grid

            generator = torch.Generator().manual_seed(config.seed)
            return grid(sample(ema, make_scheduler(), (16, *images.shape[1:]), 100, generator, device).cpu(), 4)

        return loop.fit(step, picture)


def load_ddpm(path: Path, device) -> tuple[torch.nn.Module, dict]:
    """The averaged UNet of a ``ddpm`` checkpoint (its JSON says how it was trained) on ``device``."""
    from benchkit.checkpoints import load_model, state_dict

    tensors, info = load_model(path)
    try:
        unet = make_unet(info["size"], info["channels"], info["width"])
        unet.load_state_dict(state_dict(tensors, "ema"))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise UserError(f"checkpoint {path} does not hold a benchkit DDPM ({exc}): train it again") from exc
    return unet.to(device).eval().requires_grad_(False), info


@hookimpl
def register_trainers(register):
    register(DDPMTrainer)
