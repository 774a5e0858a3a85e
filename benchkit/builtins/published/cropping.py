"""The ``crop`` size strategy: the model sees a window around each hole, as IOPaint's ``crop``
high-resolution strategy runs it (``iopaint/model/base.py``: ``boxes_from_mask``, ``_crop_box``,
``_run_box``).

Each connected region of the hole gets its bounding box (outer contours, as OpenCV's
``findContours`` with ``RETR_EXTERNAL`` finds them), widened by ``margin`` pixels on every side
about its centre; a window that crosses the image's edge is shifted back inside (more context, the
same size) and clipped. The model runs on each window (padded to its multiple and cropped back) and
its output is pasted at the window's place, windows in contour order. Outside every window the
output is the input: the model never saw those pixels, so the known-region metrics measure the
windows only.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom exclusive)


def hole_boxes(hole: np.ndarray) -> list[Box]:
    """Bounding boxes of the outer contours of a ``H x W`` bool hole."""
    contours, _ = cv2.findContours(hole.astype(np.uint8) * 255, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append((x, y, x + w, y + h))
    return boxes


def window(box: Box, height: int, width: int, margin: int) -> Box:
    """The box widened by ``margin`` about its centre, shifted inside the image where it crosses an
    edge, and clipped."""
    left, top, right, bottom = box
    cx, cy = (left + right) // 2, (top + bottom) // 2
    half_w, half_h = (right - left + 2 * margin) // 2, (bottom - top + 2 * margin) // 2
    x0, x1, y0, y1 = cx - half_w, cx + half_w, cy - half_h, cy + half_h
    left, right, top, bottom = max(x0, 0), min(x1, width), max(y0, 0), min(y1, height)
    right += max(-x0, 0)  # a window crossing an edge keeps its size on the other side
    left -= max(x1 - width, 0)
    bottom += max(-y0, 0)
    top -= max(y1 - height, 0)
    return max(left, 0), max(top, 0), min(right, width), min(bottom, height)


def inpaint_windows(images: torch.Tensor, known: torch.Tensor, margin: int,
                    run: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
    """Each image's windows through ``run(image, known, index)`` (one image, the window's size),
    pasted into a copy of the input."""
    output = images.clone()
    height, width = images.shape[-2:]
    holes = (~known[:, 0]).cpu().numpy()
    for index in range(images.shape[0]):
        for box in hole_boxes(holes[index]):
            left, top, right, bottom = window(box, height, width, margin)
            part = (slice(index, index + 1), slice(None), slice(top, bottom), slice(left, right))
            output[part] = run(images[part], known[part], index)
    return output
