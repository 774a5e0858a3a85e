"""``ce``: the Context Encoder baseline (Pathak et al. 2016), as compared in Yeh et al. 2017.

As in the paper's comparison, the network gets the image with its holes pre-filled with the
training set's mean colour (stored in the checkpoint's JSON) and no mask input; it is trained with
all the test mask types (``benchkit train ce --masks center,pattern,random,half``). Its output in
[-1, 1] is mapped to [0, 1]; the runner keeps the known pixels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch

from benchkit.builtins import SHIPPED_MODELS
from benchkit.builtins.nets.context_encoder import ContextEncoder, prefill, train_ce
from benchkit.checkpoints import load_model, state_dict
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method, MethodContext, Trainer
from benchkit.plugin.options import Range


class ContextEncoderMethod(Method):
    """Context Encoder inference: mean-colour prefill, one forward pass."""

    name = "ce"
    seconds_per_image = 0.0017  # docs/results.md, "Seconds per image shown by benchkit list"
    description = "Context Encoder (Pathak et al. 2016): mean-prefilled input, trained on the paper masks"
    needs_checkpoint = "ce"
    checkpoint_dirs = SHIPPED_MODELS

    def setup(self, context: MethodContext) -> None:  # the runner has run check(): the shape fits
        tensors, info = load_model(context.checkpoint)
        try:
            self.net = ContextEncoder(info["size"], info["channels"], info["width"], info["bottleneck"])
            self.net.load_state_dict(state_dict(tensors, "encoder"))
            self.fill = torch.tensor(info["fill"], dtype=torch.float32, device=context.device)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"checkpoint {context.checkpoint} does not hold a benchkit Context Encoder "
                            f"({exc}): train it again") from exc
        self.net.to(context.device).eval().requires_grad_(False)

    @torch.no_grad()
    def inpaint(self, images, known):
        return (self.net(prefill(images, known, self.fill) * 2 - 1) + 1) / 2


class ContextEncoderTrainer(Trainer):
    """Trains the ``ce`` method's Context Encoder with the given masks (``benchkit/builtins/nets/context_encoder.py``).

    Parameters
    ----------
    width : int
        Channels of the first convolution, doubling at each scale (64 as in the original).
    bottleneck : int or None
        Channels of the 1x1 bottleneck; None scales the original's 4000 at 128 px to the image size.
    overlap : int
        Weight 10x a band of this many known pixels around the hole in the L2 loss (0: none).
    """

    name = "ce"
    description = "Context Encoder for the ce method, trained with --masks; writes ce-DATASET.safetensors"
    needs_masks = True

    def __init__(self, width: Annotated[int, Range(8, 1024)] = 64,
                 bottleneck: Annotated[int, Range(1)] | None = None, overlap: Annotated[int, Range(0)] = 0,
                 lr: Annotated[float, Range(0, 1, exclusive=True)] = 2e-4,
                 beta1: Annotated[float, Range(0, 1)] = 0.5) -> None:
        self.width, self.bottleneck, self.overlap, self.lr, self.beta1 = width, bottleneck, overlap, lr, beta1

    def train(self, images, config, out, command, masks):
        return train_ce(images, masks, config, Path(out), command, overlap=self.overlap, bottleneck=self.bottleneck,
                        width=self.width, lr=self.lr, beta1=self.beta1)


@hookimpl
def register_methods(register):
    register(ContextEncoderMethod)


@hookimpl
def register_trainers(register):
    register(ContextEncoderTrainer)
