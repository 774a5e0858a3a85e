"""LaMa's evaluation masks ``thin``, ``medium`` and ``thick``, made by LaMa's own procedure, and
benchkit's ``box``.

The procedure follows advimman/lama (Suvorov et al., WACV 2022): the parameters of
``configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml``, the generators of
``saicinpainting/training/data/masks.py`` (``MixedMaskGenerator``, ``make_random_irregular_mask``,
``make_random_rectangle_mask``, as their ``__call__`` passes them their limits) and the selection of
``bin/gen_mask_dataset.py``. For each image, with numpy's legacy ``RandomState`` (seeded per dataset,
image, mask spec and run seed):

1. Draw ``variants_n`` = 5 masks. For each, ONE generator kind is chosen with the configured
   probabilities normalised (irregular 1 : box 0.3 for medium and thick; irregular only for thin):
   strokes alone or boxes alone.
2. *Strokes*: ``randint(min_times, max_times + 2)`` strokes (the generator passes ``max_times + 1``
   on to a ``randint(min, max + 1)``). Each starts at ``(randint(W), randint(H))`` and makes
   ``1 + randint(5)`` segments: angle ``0.01 + randint(max_angle)`` radians, taken as
   ``2 * 3.1415926 - angle`` on even strokes; length ``10 + randint(max_len)``; brush width
   ``5 + randint(max_width)``. The end point is the start plus ``length * (sin, cos)(angle)``,
   truncated to int32 and clipped to ``[0, W]`` x ``[0, H]``; the segment is drawn with OpenCV's
   ``cv2.line`` at that thickness and becomes the next start.
3. *Boxes*: ``randint(min_times, max_times + 1)`` rectangles; each side ``randint(bbox_min,
   min(bbox_max + 1, H - 2 margin, W - 2 margin))``, the corner ``randint(margin, W - margin - side
   + 1)`` (x, then y).
4. Each variant's square crop draws ``randint(0, 1)`` (the images here are already square); a mask
   with no hole fails the attempt, which starts again from 1 (at most 10 attempts).
5. Variants whose hole exceeds ``max_tamper_area`` = 0.5 are dropped; one of the others is kept,
   ``choice(n, size=min(n, 1), replace=False)``; none left: a new attempt.

At 256 px (``config=256``) the masks are exactly those of this procedure. Images up to 256 px use
the 256 px config, larger ones the 512 px config (``config=auto``); lengths, widths, margins and box
sides are then scaled by ``size / config`` (``size`` the smaller side), drawn from the same random
numbers. ``box`` (1-3 rectangles of 30-150 px, 10 px from the border at 256 px, hole <= 70%) is
benchkit's own, not LaMa's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import MaskGenerator

VARIANTS = 5  # variants_n of the eval configs
MAX_TAMPER_AREA = 0.5  # max_tamper_area of the eval configs
ATTEMPTS = 10  # gen_mask_dataset.py's n_max
TWO_PI = 2 * 3.1415926  # the constant of masks.py, not math.tau


@dataclass(frozen=True)
class Strokes:
    """``irregular_kwargs`` of a config."""

    min_times: int
    max_times: int
    max_width: int
    max_len: int
    max_angle: int = 4


@dataclass(frozen=True)
class Boxes:
    """``box_kwargs`` of a config."""

    margin: int
    bbox_min_size: int
    bbox_max_size: int
    min_times: int
    max_times: int


@dataclass(frozen=True)
class LamaConfig:
    """One ``configs/data_gen/random_*.yaml``: the irregular (weight 1) and optional box generators."""

    size: int
    strokes: Strokes
    boxes: Boxes | None = None
    box_proba: float = 0.0


CONFIGS: dict[str, dict[int, LamaConfig]] = {
    "thin": {256: LamaConfig(256, Strokes(4, 50, 10, 40)),
             512: LamaConfig(512, Strokes(4, 70, 20, 100))},
    "medium": {256: LamaConfig(256, Strokes(4, 5, 50, 100), Boxes(0, 10, 50, 1, 5), 0.3),
               512: LamaConfig(512, Strokes(4, 10, 100, 200), Boxes(0, 30, 150, 1, 5), 0.3)},
    "thick": {256: LamaConfig(256, Strokes(1, 5, 100, 200), Boxes(10, 30, 150, 1, 3), 0.3),
              512: LamaConfig(512, Strokes(1, 5, 250, 450), Boxes(10, 30, 300, 1, 4), 0.3)},
}


def irregular(height: int, width: int, p: Strokes, scale: float, rs: np.random.RandomState) -> np.ndarray:
    """LaMa's brush strokes (step 2 of the module docstring); ``uint8`` 1 in the hole."""
    import cv2

    missing = np.zeros((height, width), np.uint8)
    for i in range(rs.randint(p.min_times, p.max_times + 2)):
        x, y = rs.randint(width), rs.randint(height)
        for _ in range(1 + rs.randint(5)):
            angle = 0.01 + rs.randint(p.max_angle)
            if i % 2 == 0:
                angle = TWO_PI - angle
            length = (10 + rs.randint(p.max_len)) * scale
            thickness = max(1, round((5 + rs.randint(p.max_width)) * scale))
            end_x = min(max(int(x + length * np.sin(angle)), 0), width)  # int(): truncation, as astype(int32)
            end_y = min(max(int(y + length * np.cos(angle)), 0), height)
            cv2.line(missing, (int(x), int(y)), (end_x, end_y), 1, thickness)
            x, y = end_x, end_y
    return missing


def rectangles(height: int, width: int, p: Boxes, scale: float, rs: np.random.RandomState) -> np.ndarray:
    """LaMa's boxes (step 3 of the module docstring); ``uint8`` 1 in the hole."""
    missing = np.zeros((height, width), np.uint8)
    margin = round(p.margin * scale)
    smallest = max(1, round(p.bbox_min_size * scale))
    largest = max(smallest + 1, min(round((p.bbox_max_size + 1) * scale), height - 2 * margin, width - 2 * margin))
    for _ in range(rs.randint(p.min_times, p.max_times + 1)):
        box_w, box_h = rs.randint(smallest, largest), rs.randint(smallest, largest)
        x = rs.randint(margin, max(margin + 1, width - margin - box_w + 1))
        y = rs.randint(margin, max(margin + 1, height - margin - box_h + 1))
        missing[y:y + box_h, x:x + box_w] = 1
    return missing


def lama_mask(height: int, width: int, config: LamaConfig, rs: np.random.RandomState,
              scale: float = 1.0) -> np.ndarray:
    """One mask by LaMa's procedure (module docstring): ``H x W`` bool, True in the hole."""
    probas = np.array([1.0] + ([config.box_proba] if config.box_proba > 0 else []), dtype=np.float32)
    probas /= probas.sum()  # MixedMaskGenerator normalises in float32
    for _ in range(ATTEMPTS):
        variants = []
        for _ in range(VARIANTS):
            kind = rs.choice(len(probas), p=probas)
            variants.append(irregular(height, width, config.strokes, scale, rs) if kind == 0 else
                            rectangles(height, width, config.boxes, scale, rs))  # type: ignore[arg-type]
        cropped = []
        for mask in variants:
            if not mask.any():  # the crop finds no hole: the attempt fails
                break
            rs.randint(0, 1)  # the square crop of a square image
            cropped.append(mask)
        else:
            kept = [m for m in cropped if m.mean() <= MAX_TAMPER_AREA]
            chosen = rs.choice(len(kept), size=min(len(kept), 1), replace=False)
            if len(chosen):
                return kept[int(chosen[0])].astype(bool)
    raise UserError(f"no LaMa mask of {height}x{width} within {ATTEMPTS} attempts: the images are too small for "
                    "this mask's strokes; use larger images or another mask")


class LamaMask(MaskGenerator):
    """Base of ``thin``, ``medium`` and ``thick``: LaMa's procedure with its ``config`` (256, 512, or
    auto: 256 for images up to 256 px, 512 above), scaled to the image size."""

    kind = "thick"

    def __init__(self, config: Literal["auto", "256", "512"] = "auto") -> None:
        self.config = config

    def known(self, height, width, *, index, rng):
        size = min(height, width)
        config = CONFIGS[self.kind][(256 if size <= 256 else 512) if self.config == "auto" else int(self.config)]
        return ~lama_mask(height, width, config, self.legacy_state(rng), scale=size / config.size)


class ThinMask(LamaMask):
    """LaMa's thin strokes (``random_thin_{256,512}.yaml``)."""

    name, kind = "thin", "thin"
    description = "LaMa's thin brush strokes, its procedure exactly (hole <= 50%)"


class MediumMask(LamaMask):
    """LaMa's medium masks: strokes or boxes (``random_medium_{256,512}.yaml``)."""

    name, kind = "medium", "medium"
    description = "LaMa's medium strokes or boxes, its procedure exactly (hole <= 50%)"


class ThickMask(LamaMask):
    """LaMa's thick masks: strokes or boxes (``random_thick_{256,512}.yaml``)."""

    name, kind = "thick", "thick"
    description = "LaMa's thick strokes or boxes, its procedure exactly (hole <= 50%)"


BOX_MAX_HOLE = 0.7


class BoxMask(MaskGenerator):
    """benchkit's own box masks: 1-3 rectangles with sides uniform in 30-150 px, 10 px from the
    border (at 256 px, scaled to the image size); a mask over 70% missing is drawn again."""

    name = "box"
    description = "1-3 random rectangles of 30-150 px at 256 px (benchkit's own), hole <= 70%"

    def known(self, height, width, *, index, rng):
        scale = min(height, width) / 256
        margin = int(round(10 * scale))
        for _ in range(100):
            missing = np.zeros((height, width), dtype=bool)
            rng.random()  # the draw of benchkit 0.2's "boxes with probability 1": the same masks as then
            for _ in range(int(rng.integers(1, 4))):
                sides = [min(int(round(rng.uniform(30, 150) * scale)), limit - 2 * margin) for limit in (height, width)]
                bh, bw = (max(1, s) for s in sides)
                top = int(rng.integers(margin, max(margin, height - margin - bh) + 1))
                left = int(rng.integers(margin, max(margin, width - margin - bw) + 1))
                missing[top:top + bh, left:left + bw] = True
            if 0 < missing.mean() <= BOX_MAX_HOLE:
                break
        return ~missing


@hookimpl
def register_masks(register):
    for cls in (ThinMask, MediumMask, ThickMask, BoxMask):
        register(cls)

