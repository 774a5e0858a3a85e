"""Checks on images and masks; each failure is a UserError naming the problem and the fix."""
from __future__ import annotations

import difflib
import math

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
    if _within(*torch.aminmax(output)):  # one pass over the whole output, no copy: the hole is within it
        return output
    hole = output[~known.expand_as(output)]  # only for a verdict on the hole and its message
    if hole.numel() == 0:
        return output
    low, high = (value.item() for value in torch.aminmax(hole))  # NaN propagates to both
    if not (math.isfinite(low) and math.isfinite(high)):
        raise BadOutput("method returned NaN or infinite values in the hole")
    if low < -OUTPUT_TOLERANCE or high > 1 + OUTPUT_TOLERANCE:
        raise BadOutput(f"method returned values in [{low:.4g}, {high:.4g}] in the hole, expected [0, 1] "
                        f"(tolerance {OUTPUT_TOLERANCE:.2g}): scale its output to [0, 1]")
    return output


def _within(low: torch.Tensor, high: torch.Tensor) -> bool:
    """Whether ``[low, high]`` is finite and inside [0, 1] up to :data:`OUTPUT_TOLERANCE`."""
    low_value, high_value = low.item(), high.item()  # NaN propagates to both, and fails both tests
    return -OUTPUT_TOLERANCE <= low_value and high_value <= 1 + OUTPUT_TOLERANCE


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
