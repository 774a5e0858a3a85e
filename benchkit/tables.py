"""Summary tables of per-image results: for each dataset and metric, methods x masks, mean ± 95% CI."""
from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

from benchkit.results import summary

PAPER_MASK_ORDER = ["center", "pattern", "random", "half"]
FORMATS = ("github", "latex", "csv")


def _ordered_masks(masks) -> list[str]:
    masks = list(masks)
    return [m for m in PAPER_MASK_ORDER if m in masks] + [m for m in masks if m not in PAPER_MASK_ORDER]


def _cell(value, digits: int) -> str:
    if not isinstance(value, tuple):
        return ""
    mean, half = value
    if math.isnan(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def format_tables(df: pd.DataFrame, metrics: list[str], fmt: str = "github") -> str:
    """Render summary tables as GitHub markdown, LaTeX (booktabs) or CSV (one flat table)."""
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
                            n = int(((df.dataset == dataset) & (df.method == method) & (df["mask"] == mask)).sum())
                            rows.append({"dataset": dataset, "metric": metric, "method": method,
                                         "mask": mask, "mean": value[0], "ci95": value[1], "n": n})
        return pd.DataFrame(rows).to_csv(index=False)
    blocks = []
    for metric in metrics:
        digits = 2 if "psnr" in metric else 4
        for dataset, table in summary(df, metric).items():
            masks = _ordered_masks(table.columns)
            rows = [[method] + [_cell(table.at[method, mask], digits) for mask in masks]
                    for method in table.index]
            title = f"{metric} on {dataset} (mean ± 95% CI, n = {df[df.dataset == dataset].image_id.nunique()} images)"
            headers = ["method"] + masks
            body = _latex(headers, rows) if fmt == "latex" else tabulate(rows, headers, tablefmt="github")
            blocks.append((f"% {title}\n" if fmt == "latex" else f"{title}\n\n") + body)
    return "\n\n".join(blocks)


def _latex(headers: list[str], rows: list[list[str]]) -> str:
    """A booktabs tabular; ``±`` becomes ``$\\pm$`` and underscores are escaped."""
    def tex(text: str) -> str:
        return text.replace("_", r"\_").replace("±", r"$\pm$")

    lines = [r"\begin{tabular}{l" + "r" * (len(headers) - 1) + "}", r"\toprule",
             " & ".join(map(tex, headers)) + r" \\", r"\midrule"]
    lines += [" & ".join(map(tex, row)) + r" \\" for row in rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"])
