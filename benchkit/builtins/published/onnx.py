"""``onnx:FILE``: an ONNX inpainting model run by ONNX Runtime.

The inputs are read from the session: one input (image and mask concatenated) or two (told apart by
a name containing ``mask``, else by channel count), their element type (float or uint8), a fixed
batch of 1 (then images go one at a time) and a fixed size (then the convention's ``size``). Two
conventions in circulation are known by name:

* ``family=lama``: Carve's LaMa export (``image`` [1, 3, 512, 512] in [0, 1], ``mask`` with
  1 = hole, output in [0, 255], composited by the model): resized to 512 and back.
* ``family=migan``: MI-GAN's pipeline (``image`` uint8 RGB, ``mask`` uint8 with 255 = known, any
  size, uint8 ``result``; the pipeline crops around the hole itself).

Otherwise the convention is stated inline (``mask``, ``scale``, ``output_scale``), and a statement
the session contradicts (a float scale for uint8 inputs) is refused. An ONNX file cannot run Python,
but it can name external weight files and custom operators: weights outside the model's folder and
operators outside ONNX's standard domains are refused before the session is made.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch

from benchkit.builtins.published.convention import Convention
from benchkit.builtins.published.model import EXTERNAL_ROUTE, PublishedModel
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import MethodContext
from benchkit.plugin.options import FilePath, Range

FAMILIES = {"lama": dict(mask="hole", scale="unit", output_scale="byte", strategy="resize"),
            "migan": dict(mask="known", scale="byte", output_scale="byte", multiple=1)}
STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}


class OnnxInpainter(PublishedModel):
    """An ONNX inpainting model (``onnx:FILE[family=lama|migan]``), run by ONNX Runtime on the CPU.

    Parameters
    ----------
    file : str
        The ``.onnx`` file (given after ``onnx:``).
    family : str
        ``lama`` (Carve's LaMa export), ``migan`` (MI-GAN's pipeline) or ``none`` (state the convention).
    name : str or None
        How the rows read.
    mask : str
        What the model's mask marks with 1 (255 at byte scale): ``hole`` or ``known`` (family: theirs).
    scale : str
        The inputs' range: ``unit`` ([0, 1]) or ``byte`` ([0, 255]); family: theirs.
    output_scale : str
        The output's range (default: as ``scale``; family: theirs).
    multiple : int
        Sides are made multiples of this when the session's size is free.
    strategy : str
        ``pad`` (symmetric, cropped after) or ``resize`` (bicubic); a fixed size larger than an image
        can be reached either way, a smaller one only by ``resize``.
    minimum : int
        The smallest side the model takes (IOPaint's ``min_size``); smaller images are padded.
    square : bool
        Whether the model takes only square inputs (IOPaint's ``pad_to_square``).
    """

    name = "onnx"
    description = "an ONNX inpainting model through ONNX Runtime: onnx:FILE[family=lama|migan]"
    spec_option = "file"
    requires = ("onnxruntime", "onnx")
    libraries = ("onnxruntime", "onnx")
    install_hint = "pip install 'benchkit[onnx]'"

    def __init__(self, file: FilePath | None = None, family: Literal["none", "lama", "migan"] = "none",
                 name: str | None = None, mask: Literal["", "hole", "known"] = "",
                 scale: Literal["", "unit", "byte"] = "", output_scale: Literal["", "unit", "byte"] = "",
                 multiple: Annotated[int, Range(0, 1024)] = 0, strategy: Literal["", "pad", "resize"] = "",
                 minimum: Annotated[int, Range(0, 8192)] = 0, square: bool = False) -> None:
        if not file:
            raise UserError("method 'onnx' needs a file: --methods onnx:FILE[family=lama]")
        self.files = [Path(file)]
        stated = {"mask": mask, "scale": scale, "output_scale": output_scale, "multiple": multiple,
                  "strategy": strategy, "minimum": minimum, "square": square}
        self.family = family
        self.settings = {**FAMILIES.get(family, {}), **{k: v for k, v in stated.items() if v}}
        self.convention = Convention(**{"multiple": 8, **self.settings})

    def check(self, context: MethodContext) -> None:
        super().check(context)
        size = self.convention.size
        height, width = context.image_shape[1:]
        if size and self.convention.strategy == "pad" and (height > size[0] or width > size[1]):
            raise UserError(f"{self.files[0]} takes {size[0]}x{size[1]} images, smaller than the dataset's "
                            f"{height}x{width}: add strategy=resize")

    def load(self, device: torch.device) -> None:
        import onnxruntime

        path = self.files[0]
        _refuse_outside_files_and_custom_operators(path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # benchkit's --threads, as torch's kernels
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own exception types for every file problem
            raise UserError(f"ONNX Runtime cannot open {path} ({str(exc).splitlines()[0][:120]}): check the file") \
                from None
        self.inputs = [(i.name, i.type, i.shape) for i in session.get_inputs()]
        self._read_session()
        self.model = session

    def _read_session(self) -> None:
        path, inputs = self.files[0], self.inputs
        if len(inputs) not in (1, 2):
            raise UserError(f"{path} takes {len(inputs)} inputs: benchkit runs models of (image, mask) or of one "
                            "4-channel input")
        if len(inputs) == 2 and "mask" in inputs[0][0].lower() and "mask" not in inputs[1][0].lower():
            self.inputs = inputs = inputs[::-1]  # image first
        self.byte_input = inputs[0][1] == "tensor(uint8)"
        scale = self.convention.scale
        if self.byte_input != (scale == "byte") or inputs[0][1] not in ("tensor(uint8)", "tensor(float)"):
            raise UserError(f"{path}'s input '{inputs[0][0]}' is {inputs[0][1]}, but the convention says scale="
                            f"{scale}: state scale=byte for uint8 inputs, unit for float in [0, 1] (or the right "
                            "family)")
        shape = inputs[0][2]
        self.one_at_a_time = shape[0] == 1
        fixed = tuple(shape[2:]) if all(isinstance(d, int) for d in shape[2:]) else None
        if fixed and self.convention.size != fixed:
            self.convention = dataclasses.replace(self.convention, size=fixed)

    def predict(self, image: torch.Tensor, mask: torch.Tensor, image_ids: list[int]) -> torch.Tensor:
        batches = image.split(1) if self.one_at_a_time else (image,)
        masks = mask.split(1) if self.one_at_a_time else (mask,)
        outputs = [self._run(i, m) for i, m in zip(batches, masks)]
        return torch.cat(outputs).to(image.device)

    def _run(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        def feed(x: torch.Tensor) -> np.ndarray:
            x = x.detach().cpu().float().numpy()
            return np.clip(np.rint(x), 0, 255).astype(np.uint8) if self.byte_input else x.astype(np.float32)

        if len(self.inputs) == 1:
            fed = {self.inputs[0][0]: feed(torch.cat([image, mask], dim=1))}
        else:
            fed = {self.inputs[0][0]: feed(image), self.inputs[1][0]: feed(mask)}
        return torch.from_numpy(np.asarray(self.model.run(None, fed)[0]).astype(np.float32))

    def model_card(self) -> dict[str, str]:
        self.load(torch.device("cpu"))
        shapes = ", ".join(f"{name} {kind} {shape}" for name, kind, shape in self.inputs)
        card = {"architecture": f"ONNX ({self.family} family), inputs {shapes}", **super().model_card()}
        self.release()
        return card


def _refuse_outside_files_and_custom_operators(path: Path) -> None:
    """External weights must lie in the model's folder; operators must be ONNX's own."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's decode errors have no common base
        raise UserError(f"{path} is not an ONNX model ({str(exc).splitlines()[0][:100]}): check the file") from None
    custom = sorted({op.domain for op in model.opset_import} - STANDARD_DOMAINS)
    if custom:
        raise UserError(f"{path} uses the custom operator domain '{custom[0]}', whose library benchkit does not "
                        f"load: {EXTERNAL_ROUTE}")
    folder = path.parent.resolve()
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location" and not (folder / entry.value).resolve().is_relative_to(folder):
                raise UserError(f"{path} names the weight file {entry.value} outside its folder: move the weights "
                                "beside the model (benchkit reads no other place)")


@hookimpl
def register_methods(register):
    register(OnnxInpainter)
