"""Summary tables of per-image results: for each dataset and metric, methods x masks, mean ± 95% CI."""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchkit.defaults import PAPER_MASKS
from benchkit.errors import UserError
from benchkit.results import summary

PAPER_MASK_ORDER = list(PAPER_MASKS)
FORMATS = ("github", "latex", "csv", "html")


def ordered_masks(masks) -> list[str]:
    masks = list(masks)
    return [m for m in PAPER_MASK_ORDER if m in masks] + [m for m in masks if m not in PAPER_MASK_ORDER]


def _cell(value, digits: int) -> str:
    if not isinstance(value, tuple):
        return ""
    mean, half = value
    if math.isnan(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


@dataclass(frozen=True)
class Display:
    """How a column is shown: which way is better, its unit and its decimals."""

    higher_is_better: bool = True
    unit: str = ""
    digits: int = 4


def metric_displays() -> dict[str, Display]:
    """Display attributes of every registered metric (built-in or from a plugin), and ``seconds``."""
    from benchkit.registry import Registry

    try:
        infos = [info for info in Registry().all() if info.kind == "metric"]
    except UserError:  # a broken plugin: its own command reports it; tables fall back to the built-ins
        infos = [info for info in Registry(block_external=True).all() if info.kind == "metric"]
    displays = {i.name: Display(i.cls.higher_is_better, i.cls.unit, i.cls.digits) for i in infos}
    return displays | {"seconds": Display(False, "s", 4)}


def _best_rows(table: pd.DataFrame, mask: str, lower: bool) -> set:
    """Methods whose mean is the best of a column (ties all count)."""
    means = {m: v[0] for m, v in table[mask].items() if isinstance(v, tuple) and not math.isnan(v[0])}
    if not means:
        return set()
    best = min(means.values()) if lower else max(means.values())
    return {m for m, v in means.items() if v == best}


def format_tables(df: pd.DataFrame, metrics: list[str], fmt: str = "github",
                  lower_is_better: frozenset[str] | None = None) -> str:
    """Render summary tables as GitHub markdown, LaTeX (booktabs, the best mean of each column in
    bold), HTML (best in bold too) or CSV (one flat table). ``lower_is_better`` names the metrics
    where less is better (default: read from the metrics' ``higher_is_better``)."""
    displays = metric_displays()
    if lower_is_better is None:
        lower_is_better = frozenset(name for name, d in displays.items() if not d.higher_is_better)
    metrics = [m for m in metrics if m in df.columns]
    if df.empty or not metrics:
        return "no results yet"
    if fmt == "csv":
        rows = []
        for metric in metrics:
            for dataset, table in summary(df, metric).items():
                for method, row in table.iterrows():
                    for mask, value in row.items():
                        if isinstance(value, tuple):
                            rows_of = (df.dataset == dataset) & (df.method == method) & (df["mask"] == mask)
                            cell = df.loc[rows_of, metric]
                            n = int(np.isfinite(pd.to_numeric(cell, errors="coerce")).sum())  # values in the mean
                            rows.append({"dataset": dataset, "metric": metric, "method": method,
                                         "mask": mask, "mean": value[0], "ci95": value[1], "n": n})
        return pd.DataFrame(rows).to_csv(index=False)
    blocks = []
    for metric in metrics:
        display = displays.get(metric, Display())
        digits, unit = display.digits, f" ({display.unit})" if display.unit else ""
        for dataset, table in summary(df, metric).items():
            masks = ordered_masks(table.columns)
            rows = [[method] + [_cell(table.at[method, mask], digits) for mask in masks]
                    for method in table.index]
            bold = {(i, j) for j, mask in enumerate(masks, start=1)
                    for i, method in enumerate(table.index)
                    if method in _best_rows(table, mask, metric in lower_is_better)}
            title = (f"{metric}{unit} on {dataset} (mean ± 95% CI, n = {df[df.dataset == dataset].image_id.nunique()} "
                     f"images{', lower is better' if metric in lower_is_better else ''})")
            values = pd.to_numeric(df.loc[df.dataset == dataset, metric], errors="coerce")
            infinite = int(np.isinf(values).sum())
            if infinite or values.isna().any():
                title += (f"; left out of the means: {infinite} infinite values (a perfect fill has PSNR +inf)"
                          f" and {int(values.isna().sum())} missing")
            headers = ["method"] + masks
            if fmt == "html":
                blocks.append(f"<h4>{html.escape(title)}</h4>\n" + _html(headers, rows, bold))
                continue
            body = _latex(headers, rows, bold) if fmt == "latex" else tabulate(rows, headers, tablefmt="github")
            blocks.append((f"% {title}\n" if fmt == "latex" else f"{title}\n\n") + body)
    return "\n\n".join(blocks)


def _latex(headers: list[str], rows: list[list[str]], bold: set[tuple[int, int]]) -> str:
    """A booktabs tabular; ``±`` becomes ``$\\pm$``, underscores are escaped, and the cells at the
    (row, column) positions in ``bold`` are set in bold."""
    def tex(text: str) -> str:
        return text.replace("_", r"\_").replace("±", r"$\pm$")

    def row_tex(i: int, row: list[str]) -> str:
        return " & ".join(r"\textbf{" + tex(c) + "}" if (i, j) in bold else tex(c) for j, c in enumerate(row))

    lines = [r"\begin{tabular}{l" + "r" * (len(headers) - 1) + "}", r"\toprule",
             " & ".join(map(tex, headers)) + r" \\", r"\midrule"]
    lines += [row_tex(i, row) + r" \\" for i, row in enumerate(rows)]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"])


def _html(headers: list[str], rows: list[list[str]], bold: set[tuple[int, int]]) -> str:
    """An HTML table; the cells at the (row, column) positions in ``bold`` are set in bold."""
    cells = [[f"<b>{html.escape(c)}</b>" if (i, j) in bold else html.escape(c) for j, c in enumerate(row)]
             for i, row in enumerate(rows)]
    return tabulate(cells, [html.escape(h) for h in headers], tablefmt="unsafehtml")
