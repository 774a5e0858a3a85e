"""Free-form masks in the style of LaMa's evaluation (Suvorov et al., WACV 2022): ``thin``,
``medium`` and ``thick`` brush strokes (with random boxes for medium and thick) and ``box``.

The generation parameters are LaMa's for 256 px images, scaled to the image size (every length and
width times ``size / 256``, ``size`` the smaller image side):

========  ============  ===========  ==========  ======================  ==================
mask      strokes       max width    max length  boxes (probability)     box side, margin
========  ============  ===========  ==========  ======================  ==================
thin      4-50          10           40          none                    -
medium    4-5           50           100         1-5 (0.3)               10-50, 0
thick     1-5           100          200         1-3 (0.3)               30-150, 10
box       none          -            -           1-3 (1.0)               30-150, 10
========  ============  ===========  ==========  ======================  ==================

A stroke starts at a random pixel and makes 1-5 straight segments: each turns by an angle of
0.01 + U(0, 4) radians (mirrored on every other stroke), has length 10 + U(0, max length) and a
brush of width 5 + randint(max width) pixels (round caps). A mask whose hole covers more than 70% of
the image (or nothing) is drawn again from the same generator, as LaMa's ``hole_range`` [0, 0.7].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import MaskGenerator

REFERENCE_SIZE = 256  # the image size LaMa's parameters are given for
MAX_HOLE = 0.7


@dataclass(frozen=True)
class Strokes:
    min_times: int
    max_times: int
    max_width: float
    max_len: float
    max_angle: float = 4.0


@dataclass(frozen=True)
class Boxes:
    probability: float
    min_times: int
    max_times: int
    min_side: float
    max_side: float
    margin: float


def stroke(missing: np.ndarray, y0: float, x0: float, y1: float, x1: float, width: float) -> None:
    """Mark (in place) the pixels whose centre lies within ``width / 2`` of the segment
    (y0, x0)-(y1, x1): a straight brush stroke with round ends."""
    h, w = missing.shape
    r = width / 2
    top, bottom = max(0, math.floor(min(y0, y1) - r)), min(h, math.ceil(max(y0, y1) + r) + 1)
    left, right = max(0, math.floor(min(x0, x1) - r)), min(w, math.ceil(max(x0, x1) + r) + 1)
    if top >= bottom or left >= right:
        return
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float64)  # only the stroke's bounding box
    dy, dx = y1 - y0, x1 - x0
    length2 = dy * dy + dx * dx
    t = np.zeros_like(yy) if length2 == 0 else np.clip(((yy - y0) * dy + (xx - x0) * dx) / length2, 0, 1)
    distance2 = (yy - (y0 + t * dy)) ** 2 + (xx - (x0 + t * dx)) ** 2
    missing[top:bottom, left:right] |= distance2 <= r * r


def draw_strokes(missing: np.ndarray, params: Strokes, scale: float, rng: np.random.Generator) -> None:
    h, w = missing.shape
    for i in range(int(rng.integers(params.min_times, params.max_times + 1))):
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        for _ in range(1 + int(rng.integers(5))):
            angle = 0.01 + rng.uniform(0, params.max_angle)
            if i % 2 == 0:
                angle = 2 * math.pi - angle
            length = (10 + rng.uniform(0, params.max_len)) * scale
            width = max(1.0, (5 + rng.integers(int(params.max_width))) * scale)
            y1 = float(np.clip(y + length * math.sin(angle), 0, h - 1))
            x1 = float(np.clip(x + length * math.cos(angle), 0, w - 1))
            stroke(missing, y, x, y1, x1, width)
            y, x = y1, x1


def draw_boxes(missing: np.ndarray, params: Boxes, scale: float, rng: np.random.Generator) -> None:
    h, w = missing.shape
    margin = int(round(params.margin * scale))
    for _ in range(int(rng.integers(params.min_times, params.max_times + 1))):
        sides = [min(int(round(rng.uniform(params.min_side, params.max_side) * scale)), limit - 2 * margin)
                 for limit in (h, w)]
        bh, bw = (max(1, s) for s in sides)
        top = int(rng.integers(margin, max(margin, h - margin - bh) + 1))
        left = int(rng.integers(margin, max(margin, w - margin - bw) + 1))
        missing[top:top + bh, left:left + bw] = True


class FreeFormMask(MaskGenerator):
    """Base of the free-form masks: LaMa's strokes and boxes, scaled to the image size."""

    strokes: Strokes | None = None
    boxes: Boxes | None = None

    def known(self, height, width, *, index, rng):
        scale = min(height, width) / REFERENCE_SIZE
        for _ in range(100):
            missing = np.zeros((height, width), dtype=bool)
            if self.strokes is not None:
                draw_strokes(missing, self.strokes, scale, rng)
            if self.boxes is not None and rng.random() < self.boxes.probability:
                draw_boxes(missing, self.boxes, scale, rng)
            if 0 < missing.mean() <= MAX_HOLE:
                return ~missing
        return ~missing  # practically unreachable; the runner refuses a mask with no hole or no known pixel


class ThinMask(FreeFormMask):
    """LaMa's thin brush strokes (4-50 strokes, width up to 10 px at 256 px)."""

    name = "thin"
    description = "free-form thin brush strokes (LaMa's evaluation), hole <= 70%"
    strokes = Strokes(4, 50, 10, 40)


class MediumMask(FreeFormMask):
    """LaMa's medium strokes (4-5, width up to 50 px at 256 px) and, with probability 0.3, boxes."""

    name = "medium"
    description = "free-form medium strokes and boxes (LaMa's evaluation), hole <= 70%"
    strokes = Strokes(4, 5, 50, 100)
    boxes = Boxes(0.3, 1, 5, 10, 50, 0)


class ThickMask(FreeFormMask):
    """LaMa's thick strokes (1-5, width up to 100 px at 256 px) and, with probability 0.3, boxes."""

    name = "thick"
    description = "free-form thick strokes and boxes (LaMa's evaluation), hole <= 70%"
    strokes = Strokes(1, 5, 100, 200)
    boxes = Boxes(0.3, 1, 3, 30, 150, 10)


class BoxMask(FreeFormMask):
    """1-3 random rectangles, sides 30-150 px at 256 px, 10 px from the border (LaMa's thick boxes)."""

    name = "box"
    description = "1-3 random rectangles (LaMa's thick-mask boxes, always drawn), hole <= 70%"
    boxes = Boxes(1.0, 1, 3, 30, 150, 10)


@hookimpl
def register_masks(register):
    for cls in (ThinMask, MediumMask, ThickMask, BoxMask):
        register(cls)
