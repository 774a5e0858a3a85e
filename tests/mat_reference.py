"""MAT's mask procedure written out from its description, independently of benchkit's code: the
global numpy random state and PIL drawing, as fenglinglwb/MAT's ``datasets/mask_generator_*.py``
run it. ``make(counts, seed, s, hole_range)`` returns MAT's mask: float32, 0 in the hole, 1 kept.
"""
import math

import numpy as np
from PIL import Image, ImageDraw


def _brush_layer(max_tries, s):
    layer = Image.new("L", (s, s), 0)
    avg = math.sqrt(2 * s * s) / 8
    for _ in range(np.random.randint(max_tries)):
        count = np.random.randint(4, 18)
        lo = 2 * math.pi / 5 - np.random.uniform(0, 2 * math.pi / 15)
        hi = 2 * math.pi / 5 + np.random.uniform(0, 2 * math.pi / 15)
        turns = []
        for k in range(count):
            u = np.random.uniform(lo, hi)
            turns.append(2 * math.pi - u if k % 2 == 0 else u)
        points = [(int(np.random.randint(0, s)), int(np.random.randint(0, s)))]
        for t in turns:
            step = np.clip(np.random.normal(loc=avg, scale=avg // 2), 0, 2 * avg)
            px = np.clip(points[-1][0] + step * math.cos(t), 0, s)
            py = np.clip(points[-1][1] + step * math.sin(t), 0, s)
            points.append((int(px), int(py)))
        pen = ImageDraw.Draw(layer)
        w = int(np.random.uniform(12, 48))
        pen.line(points, fill=1, width=w)
        for px, py in points:
            pen.ellipse((px - w // 2, py - w // 2, px + w // 2, py + w // 2), fill=1)
        np.random.random()  # flip draws whose transposed image MAT throws away
        np.random.random()
    out = np.asarray(layer, np.uint8)
    if np.random.random() > 0.5:
        out = np.flip(out, 0)
    if np.random.random() > 0.5:
        out = np.flip(out, 1)
    return out


def make(counts, seed, s, hole_range=(0, 1)):
    np.random.seed(seed)
    coef = min(hole_range[0] + hole_range[1], 1.0)
    small_fills, big_fills, strokes = counts
    while True:
        kept = np.ones((s, s), np.uint8)
        for tries, largest in ((int(small_fills * coef), s // 2), (int(big_fills * coef), s)):
            for _ in range(np.random.randint(tries)):
                w, h = np.random.randint(largest), np.random.randint(largest)
                x = np.random.randint(-(w // 2), s - w + w // 2)
                y = np.random.randint(-(h // 2), s - h + h // 2)
                kept[max(y, 0):min(y + h, s), max(x, 0):min(x + w, s)] = 0
        kept = np.logical_and(kept, 1 - _brush_layer(int(strokes * coef), s))
        ratio = 1 - np.mean(kept)
        if ratio <= hole_range[0] or ratio >= hole_range[1]:
            continue
        return kept.astype(np.float32)
