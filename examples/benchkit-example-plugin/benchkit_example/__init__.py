"""An example third-party benchkit plugin: a method, a mask, a metric, a preset and a command."""
import time
from typing import Annotated

import numpy as np
import torch

import benchkit
from benchkit.plugin.interfaces import ImageMetric, MaskGenerator, Method, Preset
from benchkit.plugin.options import Range


# --8<-- [start:method]
class FlatFill(Method):
    """Fill every missing pixel with one constant grey level.

    Parameters
    ----------
    value : float
        The grey level, in [0, 1].
    delay : float
        Seconds to sleep per batch (to test interrupted runs).
    """

    name = "flat-fill"
    description = "fills holes with a constant grey level (example third-party plugin)"

    def __init__(self, value: Annotated[float, Range(0, 1)] = 0.5, delay: Annotated[float, Range(0)] = 0.0) -> None:
        self.value = value
        self.delay = delay

    def inpaint(self, images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return torch.where(known, images, torch.full_like(images, self.value))
# --8<-- [end:method]


# --8<-- [start:mask]
class StripesMask(MaskGenerator):
    """Every other group of ``width`` rows missing.

    Parameters
    ----------
    width : int
        Height in pixels of each stripe.
    """

    name = "stripes"
    description = "horizontal stripes missing (example third-party plugin)"

    def __init__(self, width: Annotated[int, Range(1)] = 2) -> None:
        self.width = width

    def known(self, height, width, *, index, rng):
        rows = (np.arange(height) // self.width) % 2 == 0
        return np.repeat(rows[:, None], width, axis=1)
# --8<-- [end:mask]


# --8<-- [start:metric]
class MaxHoleError(ImageMetric):
    """The largest absolute error over the missing pixels of each image (intensity in [0, 1])."""

    name = "max-hole-error"
    description = "largest absolute error in the hole (example third-party plugin)"
    higher_is_better = False

    def score(self, prediction, target, known):
        error = (prediction.double() - target.double()).abs() * (~known)
        return error.flatten(1).max(1).values
# --8<-- [end:metric]


# --8<-- [start:preset]
STRIPES_DEMO = Preset(name="stripes-demo", description="flat-fill and mean-fill on stripes and center (example)",
                      datasets=("fashion-mnist-mini",), masks=("stripes", "center"), methods=("flat-fill", "mean-fill"),
                      pair=("flat-fill", "mean-fill"), metric="psnr")
# --8<-- [end:preset]


# --8<-- [start:command]
def hello(args) -> int:
    """``benchkit hello [--name N]``: a subcommand added by a plugin."""
    print(f"hello, {args.name}, from benchkit-example-plugin")
    return 0


@benchkit.hookimpl
def register_commands(subparsers):
    parser = subparsers.add_parser("hello", help="greet (a subcommand from benchkit-example-plugin)")
    parser.add_argument("--name", default="researcher")
    parser.set_defaults(handler=hello)
# --8<-- [end:command]


# --8<-- [start:hooks]
@benchkit.hookimpl
def register_metrics(register):
    register(MaxHoleError)


@benchkit.hookimpl
def register_presets(register):
    register(STRIPES_DEMO)


@benchkit.hookimpl
def register_methods(register):
    register(FlatFill)


@benchkit.hookimpl
def register_masks(register):
    register(StripesMask)
# --8<-- [end:hooks]
