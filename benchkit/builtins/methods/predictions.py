"""``predictions:DIR``: a model's outputs, made elsewhere from a ``benchkit export``, read back as a method.

The folder holds a copy of the export's ``manifest.json`` and one prediction per exported image, in
the export's layout (:mod:`benchkit.builtins.methods.exchange`). Everything is checked before the run
writes anything: the manifest must describe the run's dataset (name, options and content digest),
masks, seed and images; every expected file must be there, readable, of the images' size and
channels, and no unexpected file may be. From there on a prediction is scored like any method's
output: the known pixels are pasted back (the composite), and every metric, table and report follows.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from benchkit.builtins.methods.exchange import LAYOUTS, MANIFEST, read_manifest, stem
from benchkit.errors import UserError
from benchkit.files import cell_folder_name
from benchkit.imaging import decode_into, sixteen_bit_png_colour_type
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Method, MethodContext
from benchkit.plugin.options import FilePath

SUFFIXES = (".png", ".jpg", ".jpeg")
RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
            "nearest": Image.Resampling.NEAREST}
SHOWN = 3  # offending files named in an error


class Predictions(Method):
    """Predictions of a model that runs elsewhere, read from ``DIR`` (``predictions:DIR``).

    Parameters
    ----------
    folder : str
        The predictions folder (given after ``predictions:``).
    name : str or None
        How the rows read (``predictions:DIR[name=lama]`` reads ``lama``).
    resize : str
        ``none`` refuses predictions of another size; ``bicubic``, ``bilinear`` or ``nearest``
        resize them to the images' size (recorded in the spec, so in every cell and report).
    """

    name = "predictions"
    description = "a model's predictions made elsewhere from `benchkit export`: predictions:DIR[name=NAME]"
    spec_option = "folder"
    needs_cell = True
    in_default_run = False  # it needs a folder: only --methods names it

    def __init__(self, folder: FilePath | None = None, name: str | None = None,
                 resize: Literal["none", "bicubic", "bilinear", "nearest"] = "none") -> None:
        if not folder:
            raise UserError("method 'predictions' needs a folder: --methods predictions:DIR")
        self.folder, self.resize = Path(folder), resize  # name= only names the rows (the spec's label)

    def check(self, context: MethodContext) -> None:
        manifest = read_manifest(self.folder, "predictions folder")
        self.layout = LAYOUTS[manifest["layout"]]
        self.shape = context.image_shape
        if manifest.get("seed") != context.seed:
            raise UserError(f"predictions folder {self.folder} was made for masks of seed {manifest.get('seed')}, "
                            f"this run uses --seed {context.seed}: export again with this run's settings")
        cells = {(c.get("dataset"), c.get("mask")): c for c in manifest["cells"] if isinstance(c, dict)}
        jpeg = []
        for mask in context.masks:
            cell = cells.get((context.dataset, mask))
            if cell is None:
                made = ", ".join(f"{d}/{m}" for d, m in cells) or "nothing"
                raise UserError(f"predictions folder {self.folder} holds no predictions for {context.dataset}/{mask} "
                                f"(its manifest covers {made}): export and predict those, or leave it out")
            self._check_images(cell, context)
            missing_ids = sorted(set(context.image_ids) - set(cell.get("image_ids") or []))
            if missing_ids:
                raise UserError(f"predictions folder {self.folder} has no image {missing_ids[0]} of "
                                f"{context.dataset}/{mask} ({len(missing_ids)} missing): export as many images as "
                                "the run uses (--n-images)")
            jpeg += self._check_files(cell_folder_name(context.dataset, mask), context.image_ids, cell["image_ids"])
        if jpeg:
            warnings.warn(f"{len(jpeg)} predictions in {self.folder} are JPEG files ({', '.join(jpeg[:SHOWN])}): "
                          "lossy compression shifts the scores; save predictions as PNG")

    def _check_images(self, cell: dict, context: MethodContext) -> None:
        """The exported images are the run's: by each image's content key where the manifest has them
        (so a run of fewer images of the same folder scores the same predictions), else by the
        digest of the whole exported set."""
        keys = cell.get("image_keys")
        if isinstance(keys, list) and context.image_keys is not None:
            differing = [i for i in context.image_ids if i < len(keys) and keys[i] != context.image_keys[i]]
            if differing:
                raise UserError(f"predictions folder {self.folder} was made for other images of '{context.dataset}' "
                                f"(image {differing[0]} and {len(differing) - 1} more differ from the exported "
                                "ones): export again from these images")
        elif cell.get("dataset_digest") != context.dataset_digest:
            raise UserError(f"predictions folder {self.folder} was made for other images of '{context.dataset}' "
                            "(its manifest's dataset digest differs): export again from these images")

    def input_files(self, context: MethodContext, mask: str) -> list[Path]:
        root = self.folder / cell_folder_name(context.dataset, mask)
        return [self.folder / MANIFEST] + [self._path(root, i) for i in context.image_ids]

    def _check_files(self, folder: str, image_ids, exported_ids) -> list[str]:
        """The run's images' files there, readable and of the right size and channels; no file that
        matches no exported image."""
        root = self.folder / folder
        expected = {self._path(root, i) for i in image_ids}
        missing = [str(p.relative_to(self.folder)) for p in sorted(expected) if not p.is_file()]
        where = root / Path(self.layout.prediction).parent  # the folder the predictions lie in
        expected_names = {Path(self.layout.prediction.format(stem(i))).name for i in exported_ids}
        present = {p.with_suffix(".png").name for p in where.iterdir()
                   if p.is_file() and p.suffix.lower() in SUFFIXES} if where.is_dir() else set()
        extra = sorted(present - expected_names)
        if missing:
            raise UserError(f"predictions folder {self.folder} lacks {len(missing)} predictions "
                            f"({', '.join(missing[:SHOWN])}): predict every exported image")
        if extra:
            shown = ", ".join(str((where / e).relative_to(self.folder)) for e in extra[:SHOWN])
            raise UserError(f"predictions folder {self.folder} holds {len(extra)} files that match no exported image "
                            f"({shown}): remove them")
        bad, jpeg = [], []
        for path in sorted(expected):
            problem = self._problem(path)
            if problem:
                bad.append(f"{path.relative_to(self.folder)} ({problem})")
            if path.suffix.lower() != ".png":
                jpeg.append(str(path.relative_to(self.folder)))
        if bad:
            raise UserError(f"predictions folder {self.folder} has {len(bad)} unusable predictions: "
                            f"{'; '.join(bad[:SHOWN])}")
        return jpeg

    def _path(self, root: Path, image_id: int) -> Path:
        """The prediction of one image: its PNG, or a JPEG of the same name."""
        path = root / self.layout.prediction.format(stem(image_id))
        for suffix in SUFFIXES:
            candidate = path.with_suffix(suffix)
            if candidate.is_file():
                return candidate
        return path

    def _problem(self, path: Path) -> str | None:
        channels, height, width = self.shape
        colour_in_gray = channels == 1  # only then are the pixels themselves checked here
        try:
            with Image.open(path) as image:
                size, mode, png = image.size, image.mode, image.format == "PNG"
                if png and not colour_in_gray:  # every chunk's CRC and the end marker: truncation, bit flips
                    image.verify()
                    pixels = None
                else:
                    pixels = np.asarray(image.convert("RGB") if mode == "P" else image)
        except Exception as exc:  # truncated, not an image, unsupported: all mean "unreadable"
            return f"unreadable: {type(exc).__name__}"
        if size != (width, height) and self.resize == "none":
            return (f"{size[0]}x{size[1]}, the images are {width}x{height}: resize them, or add "
                    "resize=bicubic to the spec")
        if size != (width, height) and sixteen_bit_colour(path):
            return (f"a 16-bit colour PNG of {size[0]}x{size[1]}, the images are {width}x{height}: save it at the "
                    "images' size (resize= reads 16-bit colour only at that size)")
        if channels == 3 and mode not in ("RGB", "P"):
            return f"mode {mode}, the images are RGB"
        if channels == 1 and mode not in ("L", "I;16", "I", "RGB", "P"):
            return f"mode {mode}, the images are gray"
        if pixels is not None and channels == 1 and pixels.ndim == 3 and not (pixels == pixels[..., :1]).all():
            return "has colour, the images are gray"
        return None

    def read(self, path: Path) -> np.ndarray:
        """One prediction's pixels as ``H x W x C`` uint8, or uint16 for 16-bit PNGs (full depth, grey
        or colour), for :func:`~benchkit.imaging.decode_into`."""
        channels, height, width = self.shape
        data = path.read_bytes()  # read once, for the header check and the decoder
        if sixteen_bit_png_colour_type(data) in (2, 6):  # Pillow would cut these to 8 bits: OpenCV reads all 16
            import cv2

            array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[..., 2::-1]  # BGR -> RGB
            return np.ascontiguousarray(array[..., :1] if channels == 1 else array)
        with Image.open(io.BytesIO(data)) as image:
            if image.mode == "P":
                image = image.convert("RGB")
            if image.size != (width, height):
                image = image.resize((width, height), RESAMPLE[self.resize])
            array = np.asarray(image)
        if array.dtype != np.uint8:  # I;16 and I: 16-bit PNGs (a PNG holds at most 16 bits per value)
            array = array.astype(np.uint16)
        array = array[..., None] if array.ndim == 2 else array
        if channels == 1 and array.shape[-1] == 3:  # gray stored as RGB (check() refused colour)
            array = array[..., :1]
        return array

    def inpaint(self, images, known, mask: str = "", image_ids=()):
        root = self.folder / cell_folder_name(self.dataset, mask)
        out = torch.empty(len(image_ids), *self.shape, dtype=images.dtype)  # filled in place: no stacked copy
        decode_into(out, len(image_ids), lambda row: self.read(self._path(root, image_ids[row])))
        return out.to(images.device)

    def setup(self, context: MethodContext) -> None:  # check() ran in the plan, on another instance
        self.dataset, self.shape = context.dataset, context.image_shape
        self.layout = LAYOUTS[read_manifest(self.folder, "predictions folder")["layout"]]


def sixteen_bit_colour(path: Path) -> bool:
    """Whether a file is a PNG of 16 bits per channel in colour (RGB or RGBA)."""
    with open(path, "rb") as handle:
        return sixteen_bit_png_colour_type(handle.read(26)) in (2, 6)


@hookimpl
def register_methods(register):
    register(Predictions)
