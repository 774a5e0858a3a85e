"""Checks on images and masks; each failure is a UserError naming the problem and the fix."""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from pathlib import Path

import torch

from benchkit.errors import UserError


def check_images(images: torch.Tensor, source: str) -> None:
    """Images must be float ``N x C x H x W`` tensors, finite, with values in [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise UserError(f"{source} gave images of shape {shape} and type "
                        f"{getattr(images, 'dtype', '?')}: expected float N x C x H x W")
    if images.numel() == 0:
        raise UserError(f"{source} gave no images: check the data and --n-images")
    low, high = (value.item() for value in torch.aminmax(images))  # one pass; NaN propagates to both
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UserError(f"{source} gave images with NaN or infinite values: fix or remove those images")
    if low < 0 or high > 1:
        raise UserError(f"{source} gave images with values in [{low:.3g}, {high:.3g}]: "
                        "expected [0, 1] (divide 8-bit images by 255)")


OUTPUT_TOLERANCE = 0.5 / 255  # half an 8-bit level: an overshoot clamping cannot tell from rounding


class BadOutput(ValueError):
    """A method returned something that is not an image batch in [0, 1]; its cell fails with this line."""


def check_output(output, images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """A method's output, checked as a dataset's images are: a floating torch.Tensor of the batch's
    shape, on its device, finite and within [0, 1] (up to :data:`OUTPUT_TOLERANCE`) in the hole, the
    only pixels the composite takes. Returns it as float32; raises :class:`BadOutput` saying what came back."""
    expected = f"a float torch.Tensor of shape {tuple(images.shape)} on {images.device}"
    if not isinstance(output, torch.Tensor):
        raise BadOutput(f"method returned a {type(output).__module__}.{type(output).__name__}, expected {expected}")
    if tuple(output.shape) != tuple(images.shape):
        raise BadOutput(f"method returned shape {tuple(output.shape)}, expected {tuple(images.shape)}")
    if not output.is_floating_point():
        raise BadOutput(f"method returned {output.dtype} values, expected {expected} with values in [0, 1]")
    if output.device != images.device:
        raise BadOutput(f"method returned a tensor on {output.device}, the batch is on {images.device}")
    output = output.to(torch.float32)
    hole = output[~known.expand_as(output)]
    if hole.numel() == 0:
        return output
    low, high = (value.item() for value in torch.aminmax(hole))  # NaN propagates to both
    if not (math.isfinite(low) and math.isfinite(high)):
        raise BadOutput("method returned NaN or infinite values in the hole")
    if low < -OUTPUT_TOLERANCE or high > 1 + OUTPUT_TOLERANCE:
        raise BadOutput(f"method returned values in [{low:.4g}, {high:.4g}] in the hole, expected [0, 1] "
                        f"(tolerance {OUTPUT_TOLERANCE:.2g}): scale its output to [0, 1]")
    return output


def check_known(known: torch.Tensor, images, source: str, where: Callable[[int], str] | None = None) -> None:
    """Masks must be bool ``N x 1 x H x W`` matching the images (a tensor, or its shape), each with
    known and missing pixels. ``where(i)`` names the i-th mask in messages (default ``image i``)."""
    image_shape = tuple(images.shape) if hasattr(images, "shape") else tuple(images)
    expected = (image_shape[0], 1, *image_shape[2:])
    if not isinstance(known, torch.Tensor) or known.dtype != torch.bool or tuple(known.shape) != expected:
        shape = tuple(known.shape) if hasattr(known, "shape") else type(known).__name__
        raise UserError(f"{source} gave masks of shape {shape} and type {getattr(known, 'dtype', '?')} "
                        f"for images of shape {image_shape}: expected bool {expected}")
    name = where or (lambda i: f"image {i}")
    per_image = known.flatten(1)
    no_missing = (per_image.all(1)).nonzero().flatten().tolist()
    if no_missing:
        raise UserError(f"{source} leaves no missing pixel in {name(no_missing[0])}: every mask needs a hole "
                        "to inpaint")
    no_known = (~per_image.any(1)).nonzero().flatten().tolist()
    if no_known:
        raise UserError(f"{source} leaves no known pixel in {name(no_known[0])}: every mask must keep some "
                        "observed pixels")


DEVICE_TYPES = ("cpu", "cuda", "mps")


def parse_device(text: str) -> torch.device:
    """``--device`` as a torch device that can run the benchmark here, or a UserError with the fix."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"bad --device '{text}' ({exc}): use cpu or cuda") from exc
    check_device(device)
    return device


def check_device(device: torch.device) -> None:
    """Refuse devices that cannot run the benchmark here, with the fix."""
    if device.type not in DEVICE_TYPES:
        raise UserError(f"--device {device} cannot run methods: use cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU: use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: torch sees only {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps asked for, but torch sees no Apple GPU: use --device cpu")


def check_option_names(options: dict[str, dict], registry, in_run: set[str], notes: list[str]) -> None:
    """Every ``-o PLUGIN.KEY`` must name a plugin; one that is installed but not in this run gets a note."""
    known = {info.name for info in registry.all()}
    for plugin, keys in options.items():
        if plugin in in_run:
            continue
        if plugin in known:
            notes.append(f"-o {plugin}.{next(iter(keys))}=... is not used: '{plugin}' is not in this run")
            continue
        close = difflib.get_close_matches(plugin, sorted(in_run | known), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"-o {plugin}.{next(iter(keys))}: there is no plugin '{plugin}': {hint}"
                        "see `benchkit list`")


def is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder; one that cannot be looked into (permissions) is a UserError."""
    try:
        return path.is_dir()
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror or exc}): check the permissions of it and of the "
                        "folders above it") from exc


def folder_entries(path: Path, what: str) -> list[Path]:
    """The entries of a folder the user named (``what``: "image folder", "mask folder"), sorted by
    name, hidden ones (macOS ``._*`` sidecars) left out; a missing or unreadable folder is a UserError."""
    if not is_folder(path):
        raise UserError(f"{what} {path} does not exist: check the path")
    try:
        return sorted(p for p in path.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise UserError(f"cannot read {what} {path} ({exc.strerror or exc}): check its permissions (the "
                        "folder needs read and execute rights)") from exc
