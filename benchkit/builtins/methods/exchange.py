"""Files exchanged with models that run elsewhere: the layouts of an export and of its predictions.

``benchkit export`` writes, for each (dataset, mask) pair, the ground truth, the mask and the masked
input of every image as lossless PNGs, in one of three layouts, and a ``manifest.json`` that
records what they are (benchkit version, dataset identity and digest, seed, mask specs, image ids)
and the SHA-256 of every file. ``predictions:DIR`` reads a model's outputs back from a folder that
holds a copy of that manifest. Images are named by their position in the test split, ``00042``.

================  ===========================================================  ==========================
layout            inputs, per ``DATASET__MASK/`` folder                         predictions, same folder
================  ===========================================================  ==========================
``benchkit``      ``gt/N.png``, ``known/N.png`` (255 = known), ``input/N.png``   ``N.png``
``lama``          ``N.png`` (ground truth), ``N_mask000.png`` (255 = hole)       ``N_mask000.png``
``repaint``       ``gt/N.png``, ``gt_keep_mask/N.png`` (255 = known),            ``inpainted/N.png``
                  ``gt_masked/N.png``
================  ===========================================================  ==========================

LaMa's ``bin/predict.py`` names each output after its mask file (``saicinpainting/evaluation/
data.py``, ``InpaintingDataset``: images found as ``*mask*`` files with the image beside them);
RePaint's configs read ``gt``, ``gt_keep_mask`` (white = kept) and write ``inpainted``.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchkit.errors import UserError

MANIFEST = "manifest.json"
FORMAT = 1


@dataclass(frozen=True)
class Layout:
    """Where each file of one image lies, relative to its ``DATASET__MASK`` folder."""

    name: str
    truth: str
    mask: str
    masked: str | None
    prediction: str
    mask_value_known: bool  # True: 255 marks a known pixel; False: 255 marks the hole

    def files(self, stem: str) -> dict[str, str]:
        names = {"truth": self.truth, "mask": self.mask, "masked": self.masked}
        return {role: pattern.format(stem) for role, pattern in names.items() if pattern is not None}


LAYOUTS = {
    "benchkit": Layout("benchkit", "gt/{}.png", "known/{}.png", "input/{}.png", "{}.png", True),
    "lama": Layout("lama", "{}.png", "{}_mask000.png", None, "{}_mask000.png", False),
    "repaint": Layout("repaint", "gt/{}.png", "gt_keep_mask/{}.png", "gt_masked/{}.png", "inpainted/{}.png", True),
}


def stem(image_id: int) -> str:
    return f"{image_id:05d}"


def png_bytes(image: np.ndarray) -> bytes:
    """Lossless PNG of an ``H x W x C`` uint8 array (C = 1: gray, 3: RGB), with no metadata, so that
    the same pixels always give the same bytes."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_digest(manifest: dict) -> str:
    """Identity of an export's content: everything but the file list and the layout."""
    core = {k: manifest[k] for k in ("benchkit_format", "seed", "n_images", "cells") if k in manifest}
    return sha256(json.dumps(core, sort_keys=True).encode())


def read_manifest(folder: Path, what: str) -> dict:
    """The export manifest in ``folder``; UserError naming the problem and the fix."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{what} {folder} has no {MANIFEST}: copy the manifest.json of the `benchkit export` "
                        "it was made from into it") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{what} {path} is unreadable ({exc}): copy it again from the export") from exc
    if not isinstance(manifest, dict) or manifest.get("layout") not in LAYOUTS or \
            not isinstance(manifest.get("cells"), list):
        raise UserError(f"{what} {path} is not a benchkit export manifest: copy the one `benchkit export` wrote")
    return manifest
