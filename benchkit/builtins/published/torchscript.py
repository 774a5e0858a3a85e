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
from benchkit.builtins.published.model import EXTERNAL_ROUTE, PublishedModel
from benchkit.builtins.published.pickles import is_pickle
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.options import FilePath, Range


class TorchScriptInpainter(PublishedModel):
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
        How sizes reach the multiple: ``pad`` (symmetric, cropped after), ``resize`` (bicubic), or
        ``crop`` (a window around each hole, padded; IOPaint's crop strategy).
    margin : int
        With ``strategy=crop``: pixels of context kept around each hole (IOPaint's default 128).
    minimum : int
        The smallest side the model takes (IOPaint's ``min_size``); smaller images are padded.
    square : bool
        Whether the model takes only square inputs (IOPaint's ``pad_to_square``).
    """

    name = "torchscript"
    description = "a TorchScript inpainting model (IOPaint's big-lama.pt ...): torchscript:FILE[trusted=true]"
    spec_option = "file"

    def __init__(self, file: FilePath | None = None, trusted: bool = False, name: str | None = None,
                 mask: Literal["hole", "known"] = "hole", scale: Literal["unit", "byte"] = "unit",
                 multiple: Annotated[int, Range(1, 1024)] = 8, strategy: Literal["pad", "resize", "crop"] = "pad",
                 margin: Annotated[int, Range(1, 4096)] = 128, minimum: Annotated[int, Range(0, 8192)] = 0,
                 square: bool = False) -> None:
        if not file:
            raise UserError("method 'torchscript' needs a file: --methods torchscript:FILE[trusted=true]")
        if not trusted:
            raise UserError(f"{file} is TorchScript, a program that runs when it is loaded: add [trusted=true] only "
                            f"if you trust its source, or {EXTERNAL_ROUTE}")
        self.files = [Path(file)]
        self.convention = Convention(mask, scale, multiple, strategy, margin=margin, minimum=minimum, square=square)

    def load(self, device: torch.device) -> None:
        path = self.files[0]
        if is_pickle(path):
            raise UserError(f"{path} is a bare pickle, not TorchScript: benchkit never unpickles code; "
                            f"{EXTERNAL_ROUTE}")
        try:
            with warnings.catch_warnings():  # torch 2.13 calls the format deprecated; the files in circulation use it
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{path} is not a TorchScript file ({str(exc).splitlines()[0][:120]}): save the "
                            "model with torch.jit.save") from exc
        self.inputs = len(model.forward.schema.arguments) - 1  # the first is self
        if self.inputs not in (1, 2):
            raise UserError(f"{path}'s forward takes {self.inputs} inputs: benchkit runs forward(image, mask) "
                            "or forward(cat(image, mask))")
        self.model = model.eval()

    def predict(self, image: torch.Tensor, mask: torch.Tensor, image_ids: list[int]) -> torch.Tensor:
        return self.model(image, mask) if self.inputs == 2 else self.model(torch.cat([image, mask], dim=1))

    def model_card(self) -> dict[str, str]:
        self.load(torch.device("cpu"))
        form = "forward(image, mask)" if self.inputs == 2 else "forward(cat(image, mask))"
        card = {"architecture": f"TorchScript, {form}", **super().model_card()}
        self.release()
        return card


@hookimpl
def register_methods(register):
    register(TorchScriptInpainter)
