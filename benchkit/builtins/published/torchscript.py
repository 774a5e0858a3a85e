"""``torchscript:FILE``: an inpainting model saved as TorchScript, such as IOPaint's ``big-lama.pt``.

A TorchScript file is a program: loading it runs what it holds (PyTorch's security notes say to
treat it as code). So a file is loaded only when the spec says ``trusted=true``; without it the run
stops before anything is written, and the external-models guide's route (export, run the model in
its own environment, ``predictions:DIR``) needs no trust.

Two forms are in circulation, told apart by the scripted ``forward``'s arguments:

* ``forward(image, mask)`` (LaMa's ``bin/to_jit.py``, which IOPaint distributes): the image in
  [0, 1], the mask with 1 = hole, the output already composited by the model;
* ``forward(x)``: one 4-channel input, ``cat(image * (1 - mask), mask)``, the raw output.

Either way benchkit composites the output itself and keeps the raw output (known-region metrics);
the file's SHA-256 is part of every cell's task key.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Literal

import torch

from benchkit.builtins.published.convention import Convention
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method, MethodContext
from benchkit.plugin.options import FilePath, Range


class TorchScriptInpainter(Method):
    """A TorchScript inpainting model from a local file (``torchscript:FILE[trusted=true]``).

    Parameters
    ----------
    file : str
        The ``.pt`` file (given after ``torchscript:``).
    trusted : bool
        Load the file although loading runs its code: only for a file from a source you trust.
    name : str or None
        How the rows read.
    mask : str
        What the model's mask marks with 1: ``hole`` (LaMa) or ``known``.
    scale : str
        The model's value range, in and out: ``unit`` ([0, 1]) or ``byte`` ([0, 255]).
    multiple : int
        The model takes sides that are multiples of this (LaMa: 8).
    strategy : str
        How sizes reach the multiple: ``pad`` (symmetric, cropped after) or ``resize`` (bicubic).
    """

    name = "torchscript"
    description = "a TorchScript inpainting model (IOPaint's big-lama.pt ...): torchscript:FILE[trusted=true]"
    spec_option = "file"
    in_default_run = False

    def __init__(self, file: FilePath | None = None, trusted: bool = False, name: str | None = None,
                 mask: Literal["hole", "known"] = "hole", scale: Literal["unit", "byte"] = "unit",
                 multiple: Annotated[int, Range(1, 1024)] = 8, strategy: Literal["pad", "resize"] = "pad") -> None:
        if not file:
            raise UserError("method 'torchscript' needs a file: --methods torchscript:FILE[trusted=true]")
        if not trusted:
            raise UserError(f"{file} is TorchScript, a program that runs when it is loaded: add [trusted=true] only "
                            "if you trust its source, or export the model's predictions elsewhere and score them with "
                            "predictions:DIR (docs: external models)")
        self.file = Path(file)
        self.convention = Convention(mask, scale, multiple, strategy)

    def _load(self, device: torch.device):
        if not self.file.is_file():
            raise UserError(f"TorchScript file {self.file} does not exist: check the path")
        try:
            with warnings.catch_warnings():  # torch 2.13 calls the format deprecated; the files in circulation use it
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(self.file), map_location=device)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{self.file} is not a TorchScript file ({str(exc).splitlines()[0][:120]}): save the "
                            "model with torch.jit.save") from exc
        inputs = len(model.forward.schema.arguments) - 1  # the first is self
        if inputs not in (1, 2):
            raise UserError(f"{self.file}'s forward takes {inputs} inputs: benchkit runs forward(image, mask) "
                            "or forward(cat(image, mask))")
        return model.eval(), inputs

    def check(self, context: MethodContext) -> None:
        self._load(torch.device("cpu"))  # the file is trusted: found readable, and its form known, before any write

    def input_files(self, context: MethodContext, mask: str) -> list[Path]:
        return [self.file]

    def setup(self, context: MethodContext) -> None:
        self.model, self.inputs = self._load(context.device)

    @torch.no_grad()
    def inpaint(self, images, known):
        image, mask = self.convention.to_model(images, known)
        output = self.model(image, mask) if self.inputs == 2 else self.model(torch.cat([image, mask], dim=1))
        return self.convention.from_model(output, images.shape)


@hookimpl
def register_methods(register):
    register(TorchScriptInpainter)
