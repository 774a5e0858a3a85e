"""Box plots as standalone SVG text, so reports need no plotting library and open offline.

Tukey's convention: the box spans the first to third quartile with a line at the median, whiskers
reach the most extreme values within 1.5 IQR of the box, and values beyond them are drawn as dots;
a diamond marks the mean.
"""
from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np

WIDTH_PER_BOX = 90
HEIGHT = 260
MARGIN = {"left": 56, "right": 12, "top": 32, "bottom": 44}  # the title has the band above the plot to itself


def box_stats(values: np.ndarray) -> dict[str, Any]:
    """Quartiles, Tukey whiskers, outliers and mean of the finite ``values``."""
    values = np.sort(np.asarray(values, float)[np.isfinite(values)])
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    iqr = q3 - q1
    inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
    low, high = (inside.min(), inside.max()) if inside.size else (q1, q3)
    return {"q1": q1, "median": median, "q3": q3, "low": low, "high": high, "mean": values.mean(),
            "outliers": values[(values < low) | (values > high)], "n": values.size}


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low or 1.0
    step = 10 ** math.floor(math.log10(span / count))
    step *= next(m for m in (1, 2, 5, 10) if span / (step * m) <= count)
    return [t for t in np.arange(math.ceil(low / step) * step, high + step / 2, step) if t <= high]


def box_plot_svg(groups: dict[str, np.ndarray], title: str = "", unit: str = "") -> str:
    """One box per group (label -> values), on a shared vertical axis; returns ``<svg>`` text."""
    stats = {label: box_stats(v) for label, v in groups.items() if np.isfinite(np.asarray(v, float)).any()}
    width = MARGIN["left"] + MARGIN["right"] + WIDTH_PER_BOX * max(1, len(stats))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
             f'viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="11">',
             f'<text x="{width / 2}" y="15" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    if not stats:
        return "".join(parts + ["</svg>"])
    low = min(min(s["low"], s["outliers"].min(initial=s["low"])) for s in stats.values())
    high = max(max(s["high"], s["outliers"].max(initial=s["high"])) for s in stats.values())
    pad = (high - low) * 0.05 or 0.5
    low, high = low - pad, high + pad
    top, bottom = MARGIN["top"], HEIGHT - MARGIN["bottom"]

    def y(value: float) -> float:
        return bottom - (value - low) / (high - low) * (bottom - top)

    for tick in _ticks(low, high):
        parts.append(f'<line x1="{MARGIN["left"]}" x2="{width - MARGIN["right"]}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" stroke="#ddd"/><text x="{MARGIN["left"] - 4}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{tick:g}</text>')
    parts.append(f'<text transform="translate(12,{(top + bottom) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(unit)}</text>')
    for i, (label, s) in enumerate(stats.items()):
        cx = MARGIN["left"] + WIDTH_PER_BOX * (i + 0.5)
        half = WIDTH_PER_BOX * 0.3
        parts += [
            f'<line x1="{cx}" x2="{cx}" y1="{y(s["high"]):.1f}" y2="{y(s["low"]):.1f}" stroke="#333"/>',
            f'<rect x="{cx - half}" y="{y(s["q3"]):.1f}" width="{2 * half}" '
            f'height="{max(y(s["q1"]) - y(s["q3"]), 0.5):.1f}" fill="#9cc3e6" stroke="#333"/>',
            f'<line x1="{cx - half}" x2="{cx + half}" y1="{y(s["median"]):.1f}" y2="{y(s["median"]):.1f}" '
            'stroke="#000" stroke-width="2"/>',
            f'<path d="M{cx},{y(s["mean"]) - 4:.1f} l4,4 l-4,4 l-4,-4 z" fill="#d33"/>',
            f'<text x="{cx}" y="{bottom + 16}" text-anchor="middle">{escape(label)}</text>',
            f'<text x="{cx}" y="{bottom + 30}" text-anchor="middle" fill="#666">n={s["n"]}</text>',
        ]
        parts += [f'<circle cx="{cx}" cy="{y(v):.1f}" r="2" fill="none" stroke="#333"/>' for v in s["outliers"]]
    return "".join(parts + ["</svg>"])
