"""Comparison grids in the style of the paper's Fig. 8 (and Fig. 12's error images).

A grid shows, for one (dataset, mask) of a run, a row per test image (the ones the run kept for
pictures, chosen by its seed) and the columns: the input with its holes painted in a marker colour,
each method's composite, optionally each method's error ``|x - x_hat| * 2`` (clipped to 1), and the
ground truth. Small images are enlarged (nearest neighbour) so that a tile is at least 96 px.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from benchkit.files import atomic_write_bytes
from benchkit.store.cells import CELLS, MANIFEST, cell_path, grid_path, read_cell, read_samples
from benchkit.store.results import run_display

HOLE_COLOUR = (64, 160, 255)  # RGB of missing pixels in the input column
TILE_MIN = 96  # smallest side of a tile in the picture, px
PAD = 4
LABEL_HEIGHT = 16


def _rgb(images: np.ndarray) -> np.ndarray:
    """``N x C x H x W`` uint8 (C = 1 or 3) -> ``N x H x W x 3`` uint8."""
    images = images.transpose(0, 2, 3, 1)
    return np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images[..., :3]


def input_with_holes(truth: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The corrupted input as a method sees its known pixels, holes painted ``HOLE_COLOUR``;
    ``N x H x W x 3`` uint8."""
    rgb = _rgb(truth).copy()
    rgb[~known[:, 0]] = HOLE_COLOUR
    return rgb


def error_image(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """``|x - x_hat| * 2`` per pixel and channel, clipped to [0, 255]; ``N x H x W x 3`` uint8."""
    diff = np.abs(truth.astype(np.int32) - prediction.astype(np.int32)) * 2
    return _rgb(np.clip(diff, 0, 255).astype(np.uint8))


def run_cells(run_dir: Path) -> list[tuple[str, str, str]]:
    """(dataset, mask, method) of every finished cell, methods in the folder's order of methods
    (:meth:`benchkit.store.results.RunDisplay.ordered`, as every report orders them)."""
    keys = []
    for path in sorted((Path(run_dir) / CELLS).glob("*.json")):
        record = read_cell(path)
        if record.ok:
            keys.append(record.key)
    order = run_display(Path(run_dir)).ordered("methods", [k[2] for k in keys])
    return sorted(keys, key=lambda k: order.index(k[2]))


def comparison_grid(run_dir: Path, dataset: str, mask: str, methods: list[str] | None = None,
                    rows: int = 6, errors: bool = False) -> tuple[np.ndarray, list[str]] | None:
    """Tiles and column labels of one (dataset, mask): an ``R x K x H x W x 3`` uint8 array
    (R images, K columns) and K labels; None if no cell of it kept pictures."""
    run_dir = Path(run_dir)
    if methods is None:
        methods = [m for d, k, m in run_cells(run_dir) if (d, k) == (dataset, mask)]
    kept = {m: read_samples(cell_path(run_dir, dataset, mask, m)) for m in methods}
    first = next((a for a in kept.values() if a is not None), None)
    if first is None:
        return None
    ids = first["ids"][:rows]
    truth, known = first["truth"][:rows], first["known"][:rows]
    fits = {m: a is not None and set(ids.tolist()) <= set(a["ids"].tolist())
            and a["samples"].shape[1:] == first["samples"].shape[1:] for m, a in kept.items()}
    usable = {m: a for m, a in kept.items() if a is not None and fits[m]}
    left_out = [m for m, ok in fits.items() if not ok]
    if left_out:
        warnings.warn(f"grid {dataset}/{mask} leaves out {', '.join(left_out)}: its pictures (.npz) are missing "
                      "or do not match; rerun the same `benchkit run` to redo them")
    columns, labels = [input_with_holes(truth, known)], ["input"]
    for method, arrays in usable.items():
        order = [int(np.flatnonzero(arrays["ids"] == i)[0]) for i in ids]
        prediction = arrays["samples"][order]
        columns.append(_rgb(prediction))
        labels.append(method)
        if errors:
            columns.append(error_image(truth, prediction))
            labels.append(f"err x2: {method}")
    columns.append(_rgb(truth))
    labels.append("truth")
    return np.stack(columns, axis=1), labels


def render_grid(tiles: np.ndarray, labels: list[str], title: str = "") -> bytes:
    """Lay out ``R x K x H x W x 3`` tiles with column labels; returns PNG bytes."""
    from PIL import Image, ImageDraw

    n_rows, n_cols, height, width, _ = tiles.shape
    scale = max(1, -(-TILE_MIN // max(height, width)))
    tile_h, tile_w = height * scale, width * scale
    top = LABEL_HEIGHT * (2 if title else 1) + PAD
    canvas = Image.new("RGB", (n_cols * (tile_w + PAD) + PAD, top + n_rows * (tile_h + PAD)), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((PAD, 2), title, fill="black")
    for c, label in enumerate(labels):
        draw.text((PAD + c * (tile_w + PAD), top - LABEL_HEIGHT), label[: max(4, tile_w // 6)], fill="black")
        for r in range(n_rows):
            tile = Image.fromarray(tiles[r, c]).resize((tile_w, tile_h), Image.Resampling.NEAREST)
            canvas.paste(tile, (PAD + c * (tile_w + PAD), top + r * (tile_h + PAD)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def grid_png(run_dir: Path, dataset: str, mask: str, methods: list[str] | None = None, rows: int = 6,
             errors: bool = False) -> bytes | None:
    """PNG bytes of one (dataset, mask) comparison grid, or None without kept pictures."""
    made = comparison_grid(run_dir, dataset, mask, methods=methods, rows=rows, errors=errors)
    if made is None:
        return None
    return render_grid(*made, title=f"{dataset} / {mask}")


def save_grids(run_dir: Path, pairs: list[tuple[str, str]] | None = None, rows: int = 6,
               errors: bool = False) -> list[Path]:
    """Write ``RUN/grids/DATASET__MASK.png`` for every (dataset, mask) of ``pairs`` (default: every
    one with a finished cell), each with every method of the folder that kept pictures for it, not
    only the last run's; remove the grids of pairs that have no finished cell any more. Returns the
    files written."""
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        return []
    cells = run_cells(run_dir)
    present = list(dict.fromkeys((d, k) for d, k, _ in cells))
    wanted = present if pairs is None else [p for p in dict.fromkeys(pairs) if p in present]
    written = []
    for dataset, mask in wanted:
        methods = [m for d, k, m in cells if (d, k) == (dataset, mask)]
        png = grid_png(run_dir, dataset, mask, methods=methods, rows=rows, errors=errors)
        if png is None:
            continue
        path = grid_path(run_dir, dataset, mask)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, png)
        written.append(path)
    current = {grid_path(run_dir, d, k) for d, k in present}
    for stale in (run_dir / "grids").glob("*.png"):
        if stale not in current:
            stale.unlink(missing_ok=True)
    return written
