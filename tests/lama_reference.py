"""LaMa's evaluation-mask procedure written out from its description, independently of benchkit's
code: numpy's global random state, float32 canvases and ``cv2.line`` with the colour 1.0, as
advimman/lama's ``bin/gen_mask_dataset.py`` with ``configs/data_gen/random_*_256.yaml`` runs it
on a square image already at the output size.

``make(kind, seed)`` returns the chosen mask (float32, 1 in the hole) and which generator made it.
"""
import cv2
import numpy as np

# configs/data_gen/random_{kind}_256.yaml: irregular_kwargs, box_kwargs (None: box_proba 0)
CONFIGS_256 = {
    "thin": (dict(min_times=4, max_times=50, max_width=10, max_angle=4, max_len=40), None),
    "medium": (dict(min_times=4, max_times=5, max_width=50, max_angle=4, max_len=100),
               dict(margin=0, bbox_min_size=10, bbox_max_size=50, max_times=5, min_times=1)),
    "thick": (dict(min_times=1, max_times=5, max_width=100, max_angle=4, max_len=200),
              dict(margin=10, bbox_min_size=30, bbox_max_size=150, max_times=3, min_times=1)),
}


def strokes_mask(shape, max_angle, max_len, max_width, min_times, max_times):
    """The irregular generator's call: it passes max_times + 1 as the drawing function's max_times."""
    h, w = shape
    canvas = np.zeros((h, w), np.float32)
    n_strokes = np.random.randint(min_times, (max_times + 1) + 1)
    for i in range(n_strokes):
        sx, sy = np.random.randint(w), np.random.randint(h)
        for _ in range(1 + np.random.randint(5)):
            a = 0.01 + np.random.randint(max_angle)
            if i % 2 == 0:
                a = 2 * 3.1415926 - a
            length = 10 + np.random.randint(max_len)
            brush = 5 + np.random.randint(max_width)
            ex = np.clip((sx + length * np.sin(a)).astype(np.int32), 0, w)
            ey = np.clip((sy + length * np.cos(a)).astype(np.int32), 0, h)
            cv2.line(canvas, (int(sx), int(sy)), (int(ex), int(ey)), 1.0, int(brush))
            sx, sy = ex, ey
    return canvas


def boxes_mask(shape, margin, bbox_min_size, bbox_max_size, min_times, max_times):
    """The box generator's call: it passes bbox_max_size + 1 on."""
    h, w = shape
    canvas = np.zeros((h, w), np.float32)
    biggest = min(bbox_max_size + 1, h - 2 * margin, w - 2 * margin)
    for _ in range(np.random.randint(min_times, max_times + 1)):
        bw = np.random.randint(bbox_min_size, biggest)
        bh = np.random.randint(bbox_min_size, biggest)
        x0 = np.random.randint(margin, w - margin - bw + 1)
        y0 = np.random.randint(margin, h - margin - bh + 1)
        canvas[y0:y0 + bh, x0:x0 + bw] = 1
    return canvas


def make(kind, seed, size=256):
    np.random.seed(seed)
    irregular_kwargs, box_kwargs = CONFIGS_256[kind]
    weights = np.array([1] + ([0.3] if box_kwargs else []), dtype="float32")
    weights /= weights.sum()
    for _attempt in range(10):
        drawn = []
        for _ in range(5):  # variants_n
            which = np.random.choice(len(weights), p=weights)
            if which == 0:
                drawn.append((strokes_mask((size, size), **irregular_kwargs), "strokes"))
            else:
                drawn.append((boxes_mask((size, size), **box_kwargs), "boxes"))
        try:
            pairs = []
            for canvas, made_by in drawn:
                ys, _ = np.where(canvas > 0.5)
                ys.min()  # an empty mask fails the attempt here, as in the square crop
                np.random.randint(0, 1)  # the crop's offset: 0 for a square image
                if canvas.mean() > 0.5:  # max_tamper_area
                    continue
                pairs.append((canvas, made_by))
        except ValueError:
            continue
        picked = np.random.choice(len(pairs), size=min(len(pairs), 1), replace=False)
        if len(picked):
            return pairs[picked[0]]
    raise RuntimeError("no mask in 10 attempts")
