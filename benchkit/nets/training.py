"""DCGAN training loop: Adam (lr 2e-4, beta1 0.5), random horizontal flips, resumable.

Outputs in ``out`` for a dataset NAME:

* ``gan-NAME.safetensors`` + ``gan-NAME.json``: generator and discriminator weights (prefixes
  ``generator.`` / ``discriminator.``) and how they were trained; rewritten after every epoch.
* ``gan-NAME.state.pt``: optimiser and progress state for resuming, saved every few minutes.
* ``gan-NAME-samples/epoch-NNN.png``: 8x8 samples from fixed latent codes after each epoch.
"""
from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchkit import __version__
from benchkit.checkpoints import load_state, model_stem, save_model, save_state
from benchkit.imaging import grid, save_png
from benchkit.nets.dcgan import Discriminator, Generator, sample_z


@dataclass
class GanTrainConfig:
    """Settings of one DCGAN training run (recorded in the model's JSON)."""

    dataset: str
    epochs: int = 25
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    nz: int = 100
    width: int = 64
    seed: int = 0
    device: str = "cpu"
    max_minutes: float | None = None  # stop (resumably) after this much wall time
    checkpoint_minutes: float = 5.0


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The shuffled index batches of one epoch, the same on every resume (last partial dropped)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of a batch left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    x = x.clone()
    x[flip.to(x.device)] = x[flip.to(x.device)].flip(-1)
    return x


def train_gan(images: torch.Tensor, config: GanTrainConfig, out: Path, command: str) -> Path:
    """Train (or resume training) a DCGAN on ``images`` (N x C x H x W float32 in [0, 1]).

    Returns the path of the ``.safetensors`` model. Interrupting it loses at most
    ``checkpoint_minutes`` of work; calling it again with the same ``out`` resumes.
    """
    device = torch.device(config.device)
    _, channels, size, _ = images.shape
    out.mkdir(parents=True, exist_ok=True)
    stem = out / model_stem("gan", config.dataset)
    torch.manual_seed(config.seed)
    gen = Generator(size, channels, config.nz, config.width).to(device)
    disc = Discriminator(size, channels, config.width).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), config.lr, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), config.lr, betas=(config.beta1, 0.999))
    progress = {"epoch": 0, "batch": 0, "images_seen": 0, "wall_seconds": 0.0}
    state_path = stem.with_suffix(".state.pt")
    if state_path.is_file():
        state = load_state(state_path)
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        progress = state["progress"]
    fixed_z = sample_z(64, config.nz, torch.Generator().manual_seed(config.seed), device)

    def checkpoint() -> None:
        save_state(state_path, {"generator": gen.state_dict(), "discriminator": disc.state_dict(),
                                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                                "progress": dict(progress)})

    def export() -> None:
        tensors = {f"generator.{k}": v for k, v in gen.state_dict().items()}
        tensors |= {f"discriminator.{k}": v for k, v in disc.state_dict().items()}
        info = {"kind": "gan", "size": size, "channels": channels, "train_images": len(images),
                "command": command, "benchkit_version": __version__, "torch_version": torch.__version__,
                "hardware": f"{platform.processor() or platform.machine()} / {device}",
                **asdict(config), **progress}
        save_model(stem.with_suffix(".safetensors"), tensors, info)

    started, last_save = time.time(), time.time()
    base_wall = progress["wall_seconds"]
    ones = torch.ones(config.batch_size, device=device)
    zeros = torch.zeros(config.batch_size, device=device)
    gen.train(), disc.train()
    while progress["epoch"] < config.epochs:
        epoch = progress["epoch"]
        batches = epoch_batches(len(images), config.batch_size, config.seed, epoch)
        flips = torch.Generator().manual_seed(config.seed * 7919 + epoch)
        for _ in range(progress["batch"]):  # replay the flips of batches done before a resume
            torch.rand(config.batch_size, generator=flips)
        bar = tqdm(batches, desc=f"gan epoch {epoch + 1}/{config.epochs}", initial=progress["batch"],
                   total=len(batches), unit="batch", dynamic_ncols=True)
        for i in range(progress["batch"], len(batches)):
            real = random_hflip(images[batches[i]], flips).to(device).mul(2).sub(1)
            fake = gen(sample_z(config.batch_size, config.nz, device=device))
            loss_d = (F.binary_cross_entropy_with_logits(disc(real), ones)
                      + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(disc(fake), ones)  # non-saturating G loss
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            progress.update(batch=i + 1, images_seen=progress["images_seen"] + config.batch_size,
                            wall_seconds=base_wall + time.time() - started)
            bar.update(1)
            bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}", refresh=False)
            out_of_time = (config.max_minutes is not None
                           and time.time() - started > 60 * config.max_minutes)
            if out_of_time or time.time() - last_save > 60 * config.checkpoint_minutes:
                checkpoint()
                last_save = time.time()
            if out_of_time:
                bar.close()
                export()
                return stem.with_suffix(".safetensors")
        bar.close()
        progress.update(epoch=epoch + 1, batch=0)
        gen.eval()
        with torch.no_grad():
            save_png(grid(gen(fixed_z).add(1).div(2)), out / f"{stem.name}-samples" /
                     f"epoch-{epoch + 1:03d}.png", scale=2)
        gen.train()
        checkpoint()
        export()
        last_save = time.time()
    return stem.with_suffix(".safetensors")
