"""The generic resumable training loop that trainer plugins (``gan``, ``ce``, third parties) share.

Outputs in ``out`` for a model KIND trained on dataset NAME:

* ``KIND-NAME.safetensors`` + ``KIND-NAME.json``: the weights (one prefix per network, e.g.
  ``generator.``) and how they were trained; rewritten after every epoch.
* ``KIND-NAME.state.pt``: optimiser and progress state for resuming, saved every few minutes
  (loaded with ``weights_only=True``).
* ``KIND-NAME-samples/epoch-NNN.png``: a picture after each epoch.

Adam (lr 2e-4, beta1 0.5) and random horizontal flips, as in DCGAN. Rerunning the same command
resumes; a resumed run is not bit-identical to an uninterrupted one (its noise draws differ).
"""
from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from benchkit import __version__
from benchkit.checkpoints import load_state, model_stem, save_model, save_state
from benchkit.plugin.interfaces import TrainConfig  # noqa: F401  (trainers receive it)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The shuffled index batches of one epoch, the same on every resume (last partial dropped)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def as_float(images: torch.Tensor) -> torch.Tensor:
    """Training images as float32 in [0, 1]: uint8 (0-255) is converted, float passes through.

    Trainers accept uint8 image sets so that a large dataset (CelebA's 162,770 training images at
    64 x 64 take 2 GB as uint8, 8 GB as float32) is converted one batch at a time.
    """
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


def channel_means(images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Per-channel mean in [0, 1] of an ``N x C x H x W`` image set (uint8 or float), in chunks."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    for start in range(0, len(images), chunk):
        total += as_float(images[start:start + chunk]).double().sum(dim=(0, 2, 3))
    return (total / (len(images) * images.shape[2] * images.shape[3])).float()


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of a batch left-right with probability 1/2 (coins from the CPU ``generator``,
    so a GPU run flips the same images; no boolean indexing, so no device synchronisation)."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)


LOG_EVERY = 25  # batches between loss read-outs: reading a GPU loss waits for the GPU


def on_device(tensor: torch.Tensor | None, device: torch.device, share: float = 0.25) -> torch.Tensor | None:
    """``tensor`` moved to a CUDA ``device`` when it takes under ``share`` of its free memory (the
    Fashion-MNIST split is 61 MB as uint8); otherwise (or on a CPU) left where it is."""
    if tensor is None or device.type != "cuda":
        return tensor
    free, _ = torch.cuda.mem_get_info(device)
    return tensor.to(device) if tensor.numel() * tensor.element_size() < share * free else tensor


class TrainingLoop:
    """Epoch loop with progress bar, periodic resumable state, per-epoch export and samples.

    ``networks`` and ``optimizers`` are saved by name; ``info`` is merged into the model's JSON.
    With ``labels`` (``N`` int64, one per image), ``step`` also receives the batch's labels as ``labels=``.
    On a GPU the training split (and labels) stay on the device when they fit (:func:`on_device`).
    ``step`` returns its losses as tensors (or floats); they are read every :data:`LOG_EVERY` batches.
    """

    def __init__(self, kind: str, images: torch.Tensor, config: TrainConfig, out: Path, command: str,
                 networks: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], info: dict,
                 labels: torch.Tensor | None = None):
        out.mkdir(parents=True, exist_ok=True)
        self.kind, self.config, self.out = kind, config, out
        self.networks, self.optimizers = networks, optimizers
        self.images, self.labels = (on_device(t, torch.device(config.device)) for t in (images, labels))
        self.stem = out / model_stem(kind, config.dataset)
        self.state_path = self.stem.with_name(self.stem.name + ".state.pt")
        self.info = {"kind": kind, "size": images.shape[-1], "channels": images.shape[1],
                     "train_images": len(images), "command": command, "benchkit_version": __version__,
                     "torch_version": torch.__version__, **info,
                     "hardware": f"{platform.processor() or platform.machine()} / {config.device}"}
        self.progress = {"epoch": 0, "batch": 0, "images_seen": 0, "wall_seconds": 0.0}
        if self.state_path.is_file():
            state = load_state(self.state_path)
            for name, net in networks.items():
                net.load_state_dict(state[name])
            for name, opt in optimizers.items():
                opt.load_state_dict(state[name])
            self.progress = state["progress"]

    def checkpoint(self) -> None:
        state = {name: net.state_dict() for name, net in self.networks.items()}
        state |= {name: opt.state_dict() for name, opt in self.optimizers.items()}
        save_state(self.state_path, state | {"progress": dict(self.progress)})

    def export(self) -> Path:
        tensors = {f"{name}.{k}": v for name, net in self.networks.items() for k, v in net.state_dict().items()}
        path = self.stem.with_name(self.stem.name + ".safetensors")
        save_model(path, tensors, {**self.info, **asdict(self.config), **self.progress})
        return path

    def fit(self, step: Callable[[torch.Tensor, int], dict[str, float]],
            picture: Callable[[], torch.Tensor]) -> Path:
        """Run ``step(real_batch_in_[-1,1], global_batch_index)`` over the remaining epochs.

        ``picture()`` returns a ``C x H x W`` image in [0, 1] saved after each epoch.
        """
        from benchkit.imaging import save_png

        config, progress = self.config, self.progress
        started = last_save = time.time()
        base_wall = progress["wall_seconds"]
        device = torch.device(config.device)
        while progress["epoch"] < config.epochs:
            epoch = progress["epoch"]
            batches = epoch_batches(len(self.images), config.batch_size, config.seed, epoch)
            flips = torch.Generator().manual_seed(config.seed * 7919 + epoch)
            for _ in range(progress["batch"]):  # replay the flips of batches done before a resume
                torch.rand(config.batch_size, generator=flips)
            bar = tqdm(total=len(batches), initial=progress["batch"], unit="batch", dynamic_ncols=True,
                       desc=f"{self.kind} epoch {epoch + 1}/{config.epochs}")
            for i in range(progress["batch"], len(batches)):
                real = as_float(random_hflip(self.images[batches[i]], flips)).to(device).mul(2).sub(1)
                extra = {"labels": self.labels[batches[i]].to(device)} if self.labels is not None else {}
                losses = step(real, epoch * len(batches) + i, **extra)
                progress.update(batch=i + 1, images_seen=progress["images_seen"] + config.batch_size,
                                wall_seconds=base_wall + time.time() - started)
                bar.update(1)
                if (i + 1) % LOG_EVERY == 0 or i + 1 == len(batches):  # reading a loss waits for the device
                    bar.set_postfix({k: f"{float(v):.3f}" for k, v in losses.items()}, refresh=False)
                out_of_time = config.max_minutes is not None and time.time() - started > 60 * config.max_minutes
                if out_of_time or time.time() - last_save > 60 * config.checkpoint_minutes:
                    self.checkpoint()
                    last_save = time.time()
                if out_of_time:
                    bar.close()
                    return self.export()
            bar.close()
            progress.update(epoch=epoch + 1, batch=0)
            for net in self.networks.values():
                net.eval()
            with torch.no_grad():
                save_png(picture(), self.out / f"{self.stem.name}-samples" / f"epoch-{epoch + 1:03d}.png", scale=2)
            for net in self.networks.values():
                net.train()
            self.checkpoint()
            self.export()
            last_save = time.time()
        return self.stem.with_name(self.stem.name + ".safetensors")
