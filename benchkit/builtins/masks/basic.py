"""Built-in masks: the paper's ``center``, ``pattern``, ``random`` and ``half``, and ``file``.

Every generator returns an ``H x W`` bool array, True where the pixel is known. Randomness comes
only from the ``rng`` the runner passes, seeded per (seed, dataset, mask name, image index).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from scipy import ndimage

from benchkit.errors import UserError
from benchkit.files import folder_entries
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import MaskGenerator
from benchkit.plugin.options import FilePath, Range


class CenterMask(MaskGenerator):
    """Centred square of half the height and width missing (25% of the image)."""

    name = "center"
    description = "centred square of half the height and width missing (25%)"

    def known(self, height, width, *, index, rng):
        known = np.ones((height, width), dtype=bool)
        known[height // 4: height // 4 + height // 2, width // 4: width // 4 + width // 2] = False
        return known


class RandomMask(MaskGenerator):
    """Each pixel missing independently with probability ``missing`` (default 0.8).

    Parameters
    ----------
    missing : float
        Probability that a pixel is missing, in (0, 1).
    """

    name = "random"
    description = "80% of pixels missing, independently"

    def __init__(self, missing: Annotated[float, Range(0, 1, exclusive=True)] = 0.8) -> None:
        self.missing = missing

    def known(self, height, width, *, index, rng):
        return rng.random((height, width)) >= self.missing


class PatternMask(MaskGenerator):
    """Random blobs: smooth noise thresholded so that 20-30% of the image is missing.

    Uniform noise on a coarse grid (one cell per ``blob`` pixels) is upsampled with cubic splines
    and thresholded at the quantile that leaves a missing fraction drawn uniformly from
    [``low``, ``high``], in the spirit of the Context Encoder's random-region masks.

    Parameters
    ----------
    low, high : float
        Bounds of the missing fraction, 0 < low <= high < 1.
    blob : int
        Size of a blob in pixels (the coarse grid's cell), at least 2.
    """

    name = "pattern"
    description = "random blob shapes, 20-30% missing"

    def __init__(self, low: Annotated[float, Range(0, 1, exclusive=True)] = 0.2,
                 high: Annotated[float, Range(0, 1, exclusive=True)] = 0.3, blob: Annotated[int, Range(2)] = 6) -> None:
        if low > high:
            raise UserError(f"pattern needs low <= high, got low={low} high={high}")
        self.low, self.high, self.blob = low, high, blob

    def known(self, height, width, *, index, rng):
        coarse = rng.random((height // self.blob + 2, width // self.blob + 2))
        smooth = ndimage.zoom(coarse, (height / (coarse.shape[0] - 1), width / (coarse.shape[1] - 1)),
                              order=3)[:height, :width]
        smooth = smooth + 1e-9 * rng.random(smooth.shape)  # break ties so the quantile is exact
        fraction = rng.uniform(self.low, self.high)
        missing_count = int(round(fraction * height * width))
        threshold = np.partition(smooth.ravel(), -missing_count)[-missing_count]
        return smooth < threshold


class HalfMask(MaskGenerator):
    """The left, right, top or bottom half missing, chosen uniformly per image."""

    name = "half"
    description = "left, right, top or bottom half missing, chosen per image"

    def known(self, height, width, *, index, rng):
        known = np.ones((height, width), dtype=bool)
        side = rng.integers(4)
        if side == 0:
            known[:, : width // 2] = False
        elif side == 1:
            known[:, width - width // 2:] = False
        elif side == 2:
            known[: height // 2] = False
        else:
            known[height - height // 2:] = False
        return known


class FileMask(MaskGenerator):
    """Masks from a folder of PNGs: ``file:FOLDER``.

    Files are taken in sorted name order, image ``i`` getting file ``i mod count``, and resized to
    the image size (nearest neighbour). A pixel is *missing* where the PNG is white (grey level
    > 127), the usual convention of mask datasets; ``-o file.invert=true`` flips it. Hidden files
    (names starting with a dot, such as macOS ``._*`` sidecars) are skipped.

    Parameters
    ----------
    folder : str
        Folder of PNG masks (given as ``file:FOLDER``).
    invert : bool
        White means known instead of missing.
    """

    name = "file"
    description = "file:FOLDER of PNG masks, white = missing (-o file.invert=true to flip)"
    spec_option = "folder"

    def __init__(self, folder: FilePath = FilePath(""), invert: bool = False) -> None:
        if not folder:
            raise UserError("mask 'file' needs a folder: use --masks file:FOLDER")
        path = Path(folder)
        self.files = [p for p in folder_entries(path, "mask folder") if p.suffix.lower() == ".png"]
        if not self.files:
            raise UserError(f"no .png masks in {path}: add some, white where pixels are missing")
        self.invert = invert
        self._cache: dict[tuple[Path, int, int], np.ndarray] = {}

    def source(self, index: int) -> str:
        return str(self.files[index % len(self.files)])

    def input_files(self) -> list[Path]:
        return list(self.files)  # every file: their count decides which image gets which

    def known(self, height, width, *, index, rng):
        from PIL import Image, UnidentifiedImageError

        file = self.files[index % len(self.files)]
        key = (file, height, width)
        if key not in self._cache:
            try:
                with Image.open(file) as image:
                    gray = np.asarray(image.convert("L").resize((width, height), Image.NEAREST))
            except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
                raise UserError(f"cannot read mask {file} ({exc}): replace or remove it") from exc
            missing = gray > 127
            self._cache[key] = missing if self.invert else ~missing
        return self._cache[key].copy()


@hookimpl
def register_masks(register):
    for cls in (CenterMask, PatternMask, RandomMask, HalfMask, FileMask):
        register(cls)
