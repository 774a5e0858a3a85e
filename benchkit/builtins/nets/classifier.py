"""A small CNN image classifier, trained by ``benchkit train classifier``, for semantic metrics.

``class-acc`` asks whether an inpainted image is still classified as its true label; ``fid-fmnist``
and ``kid-fmnist`` compare the classifier's penultimate features (``width * 4`` numbers per image)
of the inpainted and the real images, as GAN papers on MNIST-like data do with a domain classifier.

Architecture: three stages of 3x3 convolutions with batch norm and ReLU (``width``, ``2 width``,
``4 width`` channels; 2x2 max-pooling between them), global average pooling, dropout 0.3 and a
linear layer to the class logits. Inputs are ``N x C x H x W`` in [0, 1].
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from benchkit.builtins.training.loop import TrainConfig, TrainingLoop
from benchkit.checkpoints import load_model, state_dict
from benchkit.errors import UserError


def _stage(c_in: int, c_out: int, convs: int) -> list[nn.Module]:
    layers = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True)]
    return layers


class Classifier(nn.Module):
    """CNN classifier of ``channels``-channel images into ``classes`` classes (see module docstring)."""

    def __init__(self, channels: int = 1, classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(*_stage(channels, width, 2), nn.MaxPool2d(2), *_stage(width, 2 * width, 2),
                                  nn.MaxPool2d(2), *_stage(2 * width, 4 * width, 1), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(4 * width, classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features, ``N x 4 width``, of images in [0, 1]."""
        return self.body(images * 2 - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits, ``N x classes``, of images in [0, 1]."""
        return self.head(self.features(images))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, config: TrainConfig, out: Path, command: str,
                     width: int = 32, lr: float = 2e-3) -> Path:
    """Train (or resume) a :class:`Classifier` on ``images`` (uint8 or float in [0, 1]) and ``labels``.

    Adam (``lr``, betas 0.9/0.999) with a cosine decay to zero over all epochs, cross-entropy,
    random horizontal flips (from the shared training loop) and random shifts of up to 2 pixels.
    Writes ``classifier-DATASET.safetensors`` and its JSON (with the number of classes).
    """
    if labels.min() < 0:
        raise UserError("class labels must be >= 0")
    classes = int(labels.max()) + 1
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    net = Classifier(images.shape[1], classes, width).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999))
    batches_per_epoch = len(images) // config.batch_size
    total = max(1, config.epochs * batches_per_epoch)
    shifts = torch.Generator().manual_seed(config.seed + 1)
    loop = TrainingLoop("classifier", images, config, out, command, {"classifier": net}, {"adam": optimizer},
                        {"classes": classes, "width": width, "lr": lr}, labels=labels)

    def step(real: torch.Tensor, index: int, labels: torch.Tensor) -> dict[str, float]:
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * index / total))
        dy, dx = torch.randint(-2, 3, (2,), generator=shifts).tolist()
        x = torch.roll((real + 1) / 2, shifts=(dy, dx), dims=(2, 3))
        loss = F.cross_entropy(net(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    def picture() -> torch.Tensor:  # the first 8 training images, each with a bar as long as its confidence
        x = (images[:8].float() / 255 if images.dtype == torch.uint8 else images[:8]).to(device)
        confidence = F.softmax(net(x), 1).gather(1, labels[:8, None].to(device)).flatten()
        x = x.clone()
        for i, c in enumerate(confidence.tolist()):
            x[i, :, -2:, : max(1, round(c * x.shape[-1]))] = 1.0
        return torch.cat(list(x), dim=-1).cpu()

    return loop.fit(step, picture)


def measure_accuracy(path: Path, images: torch.Tensor, labels: torch.Tensor, device: str = "cpu",
                  batch_size: int = 512) -> float:
    """Accuracy of a trained classifier on ``images`` (uint8 or float in [0, 1]); recorded in its JSON
    as ``test_accuracy`` (with ``test_images``)."""
    import json

    from benchkit.files import atomic_write_text

    net = load_classifier(path, torch.device(device))
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size]
            x = (x.float() / 255 if x.dtype == torch.uint8 else x).to(device)
            correct += int((net(x).argmax(1).cpu() == labels[start:start + batch_size]).sum())
    accuracy = correct / len(images)
    info_path = path.with_suffix(".json")
    info = json.loads(info_path.read_text()) | {"test_accuracy": accuracy, "test_images": len(images)}
    atomic_write_text(info_path, json.dumps(info, indent=2, sort_keys=True))
    return accuracy


def load_classifier(path: Path, device: torch.device) -> Classifier:
    """The classifier of a ``classifier-DATASET.safetensors`` checkpoint, in eval mode on ``device``."""
    tensors, info = load_model(path)
    try:
        net = Classifier(int(info["channels"]), int(info["classes"]), int(info["width"]))
        net.load_state_dict(state_dict(tensors, "classifier"))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path} is not a benchkit classifier checkpoint ({' '.join(str(exc).split())[:200]}): "
                        "train one with `benchkit train classifier --dataset DATASET`") from exc
    return net.to(device).eval().requires_grad_(False)
