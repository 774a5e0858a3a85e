"""Hole-area distributions of the free-form masks: LaMa's thin / medium / thick, MAT's large / small
and benchkit's box, as benchkit draws them for a run.

    python benchmarks/mask_areas.py [--n 1500] [--size 256] [--svg docs/images/mask-hole-areas.svg]

Draws N masks of SIZE x SIZE per kind (image positions 0..N-1 of one dataset, seed 0, as a run does),
prints a Markdown table (mean hole share, quartiles, share over 50%) and writes a histogram of the
hole shares in bins of 0.05 as an SVG figure.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

KINDS = ("thin", "medium", "thick", "mat-small", "mat-large", "box")
COLOURS = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd")


def histogram_svg(holes: dict[str, np.ndarray], bins: np.ndarray, title: str) -> str:
    """One small-multiple histogram per kind, shares of masks per bin."""
    panel_w, panel_h, pad = 300, 150, 40
    columns = 3
    rows = -(-len(holes) // columns)
    width, height = columns * (panel_w + pad) + pad, rows * (panel_h + pad + 20) + 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11"><rect width="100%" height="100%" fill="white"/>'
             f'<text x="{pad}" y="22" font-size="14">{title}</text>']
    top = max(np.histogram(v, bins)[0].max() / len(v) for v in holes.values())
    for k, (name, values) in enumerate(holes.items()):
        x0 = pad + (k % columns) * (panel_w + pad)
        y0 = 50 + (k // columns) * (panel_h + pad + 20)
        counts = np.histogram(values, bins)[0] / len(values)
        bar = panel_w / len(counts)
        parts.append(f'<text x="{x0}" y="{y0 - 6}">{name}: mean {values.mean():.3f}</text>')
        parts.append(f'<line x1="{x0}" y1="{y0 + panel_h}" x2="{x0 + panel_w}" y2="{y0 + panel_h}" stroke="#444"/>')
        for i, share in enumerate(counts):
            h = panel_h * share / top
            parts.append(f'<rect x="{x0 + i * bar:.1f}" y="{y0 + panel_h - h:.1f}" width="{bar - 1:.1f}" '
                         f'height="{h:.1f}" fill="{COLOURS[k % len(COLOURS)]}"/>')
        for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
            tx = x0 + panel_w * (tick - bins[0]) / (bins[-1] - bins[0])
            parts.append(f'<text x="{tx:.1f}" y="{y0 + panel_h + 14}" text-anchor="middle">{tick:g}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--svg", type=Path, default=None)
    args = parser.parse_args()
    from benchkit.masking import make_masks
    from benchkit.plugin.registry import Registry

    registry = Registry(block_external=True)
    holes, seconds = {}, {}
    for name in KINDS:
        started = time.perf_counter()
        known = make_masks(registry.create("mask", name), "benchmark", name, list(range(args.n)), args.size,
                           args.size, 0)
        seconds[name] = time.perf_counter() - started
        holes[name] = 1 - known.float().flatten(1).mean(1).numpy()
    print(f"{args.n} masks of {args.size}x{args.size} per kind, seed 0\n")
    print("| mask | mean hole | 25% | median | 75% | max | share over 50% | ms per mask |")
    print("|---|---|---|---|---|---|---|---|")
    for name, values in holes.items():
        q1, q2, q3 = np.percentile(values, [25, 50, 75])
        print(f"| {name} | {values.mean():.3f} | {q1:.3f} | {q2:.3f} | {q3:.3f} | {values.max():.3f} | "
              f"{(values > 0.5).mean():.1%} | {1000 * seconds[name] / args.n:.1f} |")
    if args.svg:
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        args.svg.write_text(histogram_svg(holes, np.linspace(0, 1, 21),
                                          f"Hole share of {args.n} masks per kind at {args.size} px"))
        print(f"\nhistogram: {args.svg}")


if __name__ == "__main__":
    main()
