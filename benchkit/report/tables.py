"""Summary tables: for each dataset and metric, methods x masks, the mean ± 95% CI of a per-image metric
or the one value of a set metric (FID ...)."""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchkit.plugin.metric import ALL
from benchkit.store.results import RunDisplay, summary

FORMATS = ("github", "latex", "csv", "html")


def _cell(value, digits: int) -> str:
    if not isinstance(value, tuple):
        return ""
    mean, half = value
    if not math.isfinite(mean):  # no finite value entered: nothing to show (the title says what was left out)
        return "–"
    if math.isnan(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def _best_rows(table: pd.DataFrame, mask: str, lower: bool) -> set:
    """Methods whose mean is the best of a column (ties all count)."""
    means = {m: v[0] for m, v in table[mask].items() if isinstance(v, tuple) and not math.isnan(v[0])}
    if not means:
        return set()
    best = min(means.values()) if lower else max(means.values())
    return {m for m, v in means.items() if v == best}


def set_summary(sets: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """For each dataset, a methods x masks table of (value, nan) of a set metric, shaped like
    :func:`benchkit.store.results.summary`'s (a set score has no per-image spread to give a CI)."""
    tables = {}
    for dataset, part in sets[sets[metric].notna()].groupby("dataset", sort=False):
        values = part.set_index(["method", "mask"])[metric].map(lambda v: (float(v), math.nan))
        tables[dataset] = values.unstack("mask")
    return tables


def _images_per_cell(part: pd.DataFrame, metric: str) -> str:
    """How many images each cell's mean of ``metric`` is over (its finite values, the ones that
    entered): one number, or the range when cells differ (a cell whose shards failed in part, or a
    metric that gave NaN or infinite values for some images, has fewer)."""
    entered = part.groupby(["method", "mask"], sort=False)[metric].apply(
        lambda v: int(np.isfinite(pd.to_numeric(v, errors="coerce")).sum()))
    return _count_range(entered, " (cells differ: some failed in part or have non-finite values)")


def _count_range(counts: pd.Series, why: str = "") -> str:
    """``"N"`` when every count is N, else ``"LOW to HIGH"`` and ``why``."""
    low, high = int(counts.min()), int(counts.max())
    return str(high) if low == high else f"{low} to {high}{why}"


def _blocks(df: pd.DataFrame, sets: pd.DataFrame | None, metrics: list[str]):
    """(metric, dataset, table, how it was computed, n images) for each table to show."""
    for metric in metrics:
        if metric in df.columns:
            for dataset, table in summary(df, metric).items():
                yield metric, dataset, table, "mean ± 95% CI", _images_per_cell(df[df.dataset == dataset], metric)
        elif sets is not None and metric in sets.columns:
            for dataset, table in set_summary(sets, metric).items():
                yield metric, dataset, table, "one score per set", _count_range(sets.loc[sets.dataset == dataset,
                                                                                         "n_images"])


def format_tables(df: pd.DataFrame, metrics: list[str], fmt: str = "github", sets: pd.DataFrame | None = None,
                  display: RunDisplay | None = None) -> str:
    """Render summary tables as GitHub markdown, LaTeX (booktabs, the best mean of each column in
    bold), HTML (best in bold too) or CSV (one flat table). ``df`` is the per-image table and
    ``sets`` the per-set one (``load_results(path, level="set")``), whose metrics (FID ...) get one
    value per cell. ``display`` (``benchkit.store.results.run_display(path)``) gives the order of the
    masks and each metric's unit, decimals and direction; without it masks keep their order of
    appearance and metrics are shown with 4 decimals, higher is better."""
    display = display or RunDisplay()
    lower_is_better = frozenset(m for m in metrics if not display.metric(m).higher_is_better)
    binned = None
    if sets is not None and "bin" in sets.columns:
        binned, sets = sets[sets.bin != ALL], sets[sets.bin == ALL]
    blocks = list(_blocks(df, sets, metrics))
    if not blocks:
        return "no results yet"
    if fmt == "csv":
        records = []
        for metric, dataset, table, _how, _ in blocks:
            for method, row in table.iterrows():
                for mask, value in row.items():
                    if not isinstance(value, tuple):
                        continue
                    if metric in df.columns:
                        rows_of = (df.dataset == dataset) & (df.method == method) & (df["mask"] == mask)
                        n = int(np.isfinite(pd.to_numeric(df.loc[rows_of, metric], errors="coerce")).sum())
                    else:  # a set score: n is the number of images it was computed over
                        assert sets is not None
                        rows_of = (sets.dataset == dataset) & (sets.method == method) & (sets["mask"] == mask)
                        n = int(sets.loc[rows_of, "n_images"].iloc[0])
                    records.append({"dataset": dataset, "metric": metric, "method": method,
                                    "mask": mask, "mean": value[0], "ci95": value[1], "n": n})
        if binned is not None:
            records += [{"dataset": row["dataset"], "metric": metric, "method": row["method"], "mask": row["mask"],
                         "bin": row["bin"], "mean": row[metric], "ci95": math.nan, "n": int(row["n_images"])}
                        for metric in metrics if metric in binned.columns for _, row in binned.iterrows()]
        return pd.DataFrame(records).to_csv(index=False)
    out = []
    for metric, dataset, table, how, n in blocks:
        shown = display.metric(metric)
        digits, unit = shown.digits, f" ({shown.unit})" if shown.unit else ""
        masks = display.ordered("masks", table.columns)
        rows = [[method] + [_cell(table.at[method, mask], digits) for mask in masks] for method in table.index]
        bold = {(i, j) for j, mask in enumerate(masks, start=1)
                for i, method in enumerate(table.index)
                if method in _best_rows(table, mask, metric in lower_is_better)}
        lower = ", lower is better" if metric in lower_is_better else ""
        title = f"{metric}{unit} on {dataset} ({how}, n = {n} images{lower})"
        if metric in df.columns:
            values = pd.to_numeric(df.loc[df.dataset == dataset, metric], errors="coerce")
            infinite = int(np.isinf(values).sum())
            if infinite or values.isna().any():
                title += (f"; left out of the means: {infinite} infinite and {int(values.isna().sum())} missing "
                          "values")
        out.append(_titled(title, ["method"] + masks, rows, bold, fmt))
    if binned is not None and len(binned):
        out += bin_tables(binned, [m for m in metrics if m in binned.columns], fmt, display)
    return "\n\n".join(out)


def bin_tables(binned: pd.DataFrame, metrics: list[str], fmt: str, display: RunDisplay) -> list[str]:
    """Per set metric, dataset and mask: methods x hole-area bins (the rows of a ``--bins`` run whose
    ``bin`` is not "all"). A bin without images shows "-"; one too small for the metric (its value
    NaN) shows its image count, "n=1"."""
    out = []
    order = {mask: i for i, mask in enumerate(display.ordered("masks", list(dict.fromkeys(binned["mask"]))))}
    groups = sorted(binned.groupby(["dataset", "mask"], sort=False), key=lambda group: order[group[0][1]])
    for metric in metrics:
        digits = display.metric(metric).digits
        for (dataset, mask), part in groups:
            bins = list(dict.fromkeys(part.bin))
            cells = {(r["method"], r["bin"]): (float(r[metric]), int(r["n_images"])) for _, r in part.iterrows()}
            methods = list(dict.fromkeys(part.method))
            rows = [[method] + [_bin_cell(*cells[(method, b)], digits) if (method, b) in cells else "" for b in bins]
                    for method in methods]
            title = (f"{metric} on {dataset}, mask {mask}, per hole-area bin (one score per bin; "
                     f"n=K: too few images for the metric)")
            headers = ["method"] + [f"{b} (n={cells[(methods[0], b)][1]})" if (methods[0], b) in cells else b
                                    for b in bins]
            out.append(_titled(title, headers, rows, set(), fmt))
    return out


def _titled(title: str, headers: list[str], rows: list[list[str]], bold: set[tuple[int, int]], fmt: str) -> str:
    """One table under its title, in ``fmt`` (github, latex or html), the cells at ``bold`` in bold."""
    if fmt == "html":
        return f'<h4>{html.escape(title)}</h4>\n<div class="scroll">' + _html(headers, rows, bold) + "</div>"
    if fmt == "latex":
        return f"% {title}\n" + _latex(headers, rows, bold)
    return f"{title}\n\n" + tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _bin_cell(value: float, n: int, digits: int) -> str:
    if n == 0:
        return "-"
    return f"n={n}" if math.isnan(value) else f"{value:.{digits}f}"


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
