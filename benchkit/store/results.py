"""Reading a results folder into pandas: per image (``level="image"``) or per set (``level="set"``),
summaries with confidence intervals, and the failures of a run (records: :mod:`benchkit.store.cells`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from benchkit.errors import UserError
from benchkit.plugin.metric import ALL
from benchkit.store.cells import CELLS, KEY_COLUMNS, MANIFEST, CellRecord, read_cell, read_manifest


def cell_records(run_dir: Path) -> list[CellRecord]:
    """All cell records of a run folder, in file-name order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"results folder {run_dir} does not exist: give the --out of a `benchkit run`")
    if read_manifest(run_dir) is None:
        raise UserError(f"{run_dir} has no {MANIFEST}: it is not a benchkit run folder")
    return [read_cell(p) for p in sorted((run_dir / CELLS).glob("*.json"))]


SET_COLUMNS = ["dataset", "mask", "method", "bin", "n_images"]


def load_results(path: str | Path, level: str = "image") -> pd.DataFrame:
    """Results of a run folder as a tidy DataFrame: per image (``level="image"``) or per set.

    Per image: one row per (dataset, mask, method, image_id); one column per per-image metric
    (``psnr`` in dB, ``ssim``, ``l1`` ...), ``seconds`` (method time per image, amortised over its
    batch and the method's setup) and ``missing_fraction``. A failed cell contributes the rows of its
    shards that succeeded; see :func:`failures`.

    Per set (``level="set"``): one row per finished (dataset, mask, method) cell with ``bin`` "all",
    ``n_images``, and one column per set metric (``fid-fmnist``, ``kid-fmnist``, ``fid`` ...), each
    scored over all the cell's images; NaN where a metric was not computed or failed. A run with
    ``--bins`` adds a row per hole-area bin (``bin`` "0-10%" ...; LaMa's bins of its evaluator),
    scored over that bin's ``n_images`` images; NaN where a bin has too few images for the metric.
    """
    if level not in ("image", "set"):
        raise UserError(f"level '{level}' is not one of 'image', 'set'")
    records = cell_records(Path(path))
    return _image_table(records) if level == "image" else _set_table(records)


def load_tables(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables of :func:`load_results`, per image and per set, from one read of the cell files."""
    records = cell_records(Path(path))
    return _image_table(records), _set_table(records)


def _image_table(records: list[CellRecord]) -> pd.DataFrame:
    frames = []
    for record in records:
        if not record.rows:  # a failed cell keeps the rows of its shards that succeeded
            continue
        frame = pd.DataFrame(record.rows)
        frame.insert(0, "method", record.method)
        frame.insert(0, "mask", record.mask)
        frame.insert(0, "dataset", record.dataset)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=KEY_COLUMNS + ["seconds", "missing_fraction"])
    df = pd.concat(frames, ignore_index=True)
    for column in df.columns.difference(KEY_COLUMNS):  # None (JSON null) becomes NaN: every value column is float
        df[column] = pd.to_numeric(df[column], errors="coerce").astype(float)
    return df


def _set_table(records: list[CellRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        if not (r.ok and r.rows and r.set_scores):
            continue
        key = {"dataset": r.dataset, "mask": r.mask, "method": r.method}
        rows.append(key | {"bin": ALL, "n_images": len(r.rows["image_id"]),
                           **{k: _number(v) for k, v in r.set_scores.items()}})
        for name, count in (r.bin_counts or {}).items():  # a run with --bins: one row per hole-area bin
            rows.append(key | {"bin": name, "n_images": count,
                               **{k: _number(v.get(name)) for k, v in (r.bin_scores or {}).items()}})
    df = pd.DataFrame(rows)
    return df if rows else pd.DataFrame(columns=SET_COLUMNS)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of a :func:`load_results` table, per image or per set (all but the keys,
    seconds, missing_fraction, bin, n_images)."""
    return [c for c in df.columns if c not in KEY_COLUMNS + ["seconds", "missing_fraction", "bin", "n_images"]]


def failures(path: str | Path) -> pd.DataFrame:
    """The failed cells of a run, and the failed metric columns: dataset, mask, method and error
    (``metric 'NAME': ...`` for a metric that failed while the method's outputs stand)."""
    rows = []
    for r in cell_records(Path(path)):
        if not r.ok:
            rows.append({"dataset": r.dataset, "mask": r.mask, "method": r.method, "error": r.error})
        rows += [{"dataset": r.dataset, "mask": r.mask, "method": r.method, "error": f"metric '{name}': {error}"}
                 for name, error in (r.metric_errors or {}).items()]
    return pd.DataFrame(rows, columns=["dataset", "mask", "method", "error"])


def mean_ci(values: pd.Series, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its Student-t confidence interval (nan half-width for n < 2): the
    interval of one method's mean in a summary table. The paired statistics
    (:mod:`benchkit.report.stats`) bootstrap the mean of per-image differences instead, which are
    far from normal where one method is exact on some images; the two answer different questions."""
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    if n < 2:
        return float(values.mean()), math.nan
    sem = float(values.std(ddof=1)) / math.sqrt(n)
    return float(values.mean()), float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sem)


def summary(df: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """For each dataset, a methods x masks table of (mean, CI half-width) of ``metric``."""
    tables = {}
    for dataset, part in df.groupby("dataset", sort=False):
        grouped = part.groupby(["method", "mask"], sort=False)[metric].apply(mean_ci)
        tables[dataset] = grouped.unstack("mask")
    return tables


@dataclass(frozen=True)
class Display:
    """How a metric's column is shown: which way is better, its unit and its decimals."""

    higher_is_better: bool = True
    unit: str = ""
    digits: int = 4


SECONDS = Display(False, "s", 4)


@dataclass
class RunDisplay:
    """What a report needs to present a results folder, read from the folder itself (its manifest):
    the order of datasets, masks and methods of the runs that wrote it, and the display attributes
    of its metrics. So a report never needs the plugins that produced the results."""

    datasets: list[str] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    metrics: dict[str, Display] = field(default_factory=dict)

    def metric(self, name: str) -> Display:
        return SECONDS if name == "seconds" else self.metrics.get(name, Display())

    def ordered(self, kind: str, names) -> list[str]:
        """``names`` in the runs' order of ``kind`` ("datasets", "masks", "methods"), others after them."""
        names = list(dict.fromkeys(names))
        known = getattr(self, kind)
        return [n for n in known if n in names] + [n for n in names if n not in known]


def run_display(path: str | Path) -> RunDisplay:
    """The :class:`RunDisplay` of a results folder. A folder of benchkit 0.1 stored none: its masks
    keep the order its command named them in, and its metrics benchkit's built-in attributes."""
    manifest = read_manifest(Path(path)) or {}
    stored = manifest.get("display")
    if isinstance(stored, dict):
        metrics = {name: Display(bool(d.get("higher_is_better", True)), str(d.get("unit", "")), int(d.get("digits", 4)))
                   for name, d in (stored.get("metrics") or {}).items() if isinstance(d, dict)}
        return RunDisplay(list(stored.get("datasets") or []), list(stored.get("masks") or []),
                          list(stored.get("methods") or []), metrics)
    config = manifest["config"] if isinstance(manifest.get("config"), dict) else {}
    from benchkit.plugin.registry import Registry

    builtins = [i for i in Registry(block_external=True).all() if i.kind == "metric"]
    return RunDisplay(masks=[m for m in (config.get("masks") or []) if isinstance(m, str)],
                      metrics={i.name: Display(i.cls.higher_is_better, i.cls.unit, i.cls.digits) for i in builtins})
