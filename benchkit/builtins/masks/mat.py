"""MAT's masks ``mat-large`` and ``mat-small`` (Li et al., "MAT: Mask-Aware Transformer for Large
Hole Image Inpainting", CVPR 2022), made by MAT's own procedure.

The procedure follows fenglinglwb/MAT's ``datasets/mask_generator_{256,512}.py`` (large) and
``datasets/mask_generator_{256,512}_small.py`` (small), which differ only in how many shapes they
draw. With numpy's legacy ``RandomState`` (seeded per dataset, image, mask spec and run seed), on a
square of side ``s``, ``coef = min(hole_min + hole_max, 1)``:

1. ``randint(int(a * coef))`` rectangles of up to ``s // 2``, then ``randint(int(b * coef))`` of up
   to ``s``: sides ``w, h = randint(max), randint(max)``, corner ``x = randint(-w // 2, s - w + w // 2)``
   (y likewise), clipped to the image.
2. ``randint(int(c * coef))`` brush strokes (``RandomBrush``): ``randint(4, 18)`` vertices, turning
   angles uniform around 2 pi / 5 (plus or minus up to 2 pi / 15, mirrored on even vertices), steps
   ``clip(normal(r, r // 2), 0, 2 r)`` with ``r = sqrt(2) s / 8``, vertex coordinates truncated and
   clipped to ``[0, s]``; drawn with PIL's ``ImageDraw.line`` at a width ``int(uniform(12, 48))`` plus a
   disc of that width at every vertex. Two draws per stroke feed flips whose result MAT discards;
   the finished brush layer is flipped vertically, then horizontally, each with probability 1/2.
3. The hole is the union; a mask whose hole share is ``<= hole_min`` or ``>= hole_max`` is drawn
   again (MAT's ``hole_range``, default [0, 1]).

Counts (a, b, c): large (4, 2, 8) at 256 px and (5, 3, 9) at 512 px; small (2, 2, 3) and (3, 2, 4).
Images up to 256 px use the 256 px generator, larger ones the 512 px one; the brush width is
scaled by ``size / 256`` (or ``size / 512``), so at 256 and 512 px the masks are MAT's exactly.
A non-square image takes the top-left corner of the square mask of its larger side.
"""
from __future__ import annotations

import math
from typing import Annotated

import numpy as np

from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import MaskGenerator
from benchkit.plugin.options import Range

COUNTS = {"large": {256: (4, 2, 8), 512: (5, 3, 9)}, "small": {256: (2, 2, 3), 512: (3, 2, 4)}}
MEAN_ANGLE, ANGLE_RANGE = 2 * math.pi / 5, 2 * math.pi / 15
MIN_WIDTH, MAX_WIDTH = 12, 48


def _tries(rs: np.random.RandomState, limit: int) -> int:
    """``randint(limit)`` as MAT draws it; a limit of 0 (a tiny ``hole_range``) draws nothing."""
    return int(rs.randint(limit)) if limit > 0 else 0


def rectangles(hole: np.ndarray, tries: int, max_size: int, rs: np.random.RandomState) -> None:
    """MAT's ``MultiFill``: mark up to ``tries`` rectangles (in place, True = hole)."""
    s = hole.shape[0]
    for _ in range(_tries(rs, tries)):
        w, h = rs.randint(max_size), rs.randint(max_size)
        x, y = rs.randint(-(w // 2), s - w + w // 2), rs.randint(-(h // 2), s - h + h // 2)
        hole[max(y, 0):min(y + h, s), max(x, 0):min(x + w, s)] = True


def brush(s: int, tries: int, scale: float, rs: np.random.RandomState) -> np.ndarray:
    """MAT's ``RandomBrush`` on an ``s x s`` square: bool, True where a stroke passes."""
    from PIL import Image, ImageDraw

    radius = math.sqrt(s * s + s * s) / 8
    canvas = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(_tries(rs, tries)):
        n_vertex = rs.randint(4, 18)
        low = MEAN_ANGLE - rs.uniform(0, ANGLE_RANGE)
        high = MEAN_ANGLE + rs.uniform(0, ANGLE_RANGE)
        angles = [2 * math.pi - rs.uniform(low, high) if i % 2 == 0 else rs.uniform(low, high)
                  for i in range(n_vertex)]
        vertices = [(int(rs.randint(0, s)), int(rs.randint(0, s)))]
        for angle in angles:
            step = np.clip(rs.normal(loc=radius, scale=radius // 2), 0, 2 * radius)
            x = np.clip(vertices[-1][0] + step * math.cos(angle), 0, s)
            y = np.clip(vertices[-1][1] + step * math.sin(angle), 0, s)
            vertices.append((int(x), int(y)))
        width = int(rs.uniform(MIN_WIDTH, MAX_WIDTH))
        width = width if scale == 1 else max(1, round(width * scale))
        draw.line(vertices, fill=1, width=width)
        for vx, vy in vertices:
            draw.ellipse((vx - width // 2, vy - width // 2, vx + width // 2, vy + width // 2), fill=1)
        rs.random_sample()  # MAT draws for a left-right flip whose result it discards
        rs.random_sample()  # and for a top-bottom one
    stroke = np.asarray(canvas, dtype=bool)
    if rs.random_sample() > 0.5:
        stroke = np.flip(stroke, 0)
    if rs.random_sample() > 0.5:
        stroke = np.flip(stroke, 1)
    return stroke


def mat_mask(s: int, counts: tuple[int, int, int], rs: np.random.RandomState, hole_range=(0.0, 1.0),
             scale: float = 1.0, max_draws: int = 10_000) -> np.ndarray:
    """One ``s x s`` mask by MAT's ``RandomMask`` (module docstring): bool, True in the hole."""
    low, high = hole_range
    coef = min(low + high, 1.0)
    a, b, c = counts
    for _ in range(max_draws):
        hole = np.zeros((s, s), dtype=bool)
        rectangles(hole, int(a * coef), s // 2, rs)
        rectangles(hole, int(b * coef), s, rs)
        hole |= brush(s, int(c * coef), scale, rs)
        share = hole.mean()
        if low < share < high:
            return hole
    raise UserError(f"no MAT mask with a hole share in ({low}, {high}) within {max_draws} draws: widen the range")


class MatMask(MaskGenerator):
    """Base of ``mat-large`` and ``mat-small``: MAT's procedure, its 256 px generator up to 256 px and
    its 512 px one above, ``hole_min`` and ``hole_max`` its ``hole_range`` (exclusive bounds)."""

    kind = "large"

    def __init__(self, hole_min: Annotated[float, Range(0, 1)] = 0.0,
                 hole_max: Annotated[float, Range(0, 1)] = 1.0) -> None:
        if hole_min >= hole_max:
            raise UserError(f"mask '{self.name}': hole_min {hole_min} must be below hole_max {hole_max}")
        self.hole_range = (hole_min, hole_max)

    def known(self, height, width, *, index, rng):
        side = max(height, width)
        generator = 256 if side <= 256 else 512
        hole = mat_mask(side, COUNTS[self.kind][generator], self.legacy_state(rng), self.hole_range,
                        scale=side / generator)
        return ~hole[:height, :width]


class MatLargeMask(MatMask):
    """MAT's large masks (``mask_generator_{256,512}.py``)."""

    name, kind = "mat-large", "large"
    description = "MAT's large masks (rectangles and brush strokes), its procedure exactly"


class MatSmallMask(MatMask):
    """MAT's small masks (``mask_generator_{256,512}_small.py``)."""

    name, kind = "mat-small", "small"
    description = "MAT's small masks (fewer rectangles and strokes), its procedure exactly"


@hookimpl
def register_masks(register):
    for cls in (MatLargeMask, MatSmallMask):
        register(cls)
