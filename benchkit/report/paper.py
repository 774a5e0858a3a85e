"""The table of a preset (``benchkit run --preset NAME``): the paper's numbers beside ours.

Presets themselves are plugins (:class:`benchkit.plugin.interfaces.Preset`, ``register_presets``).
"""
from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

from benchkit.plugin.interfaces import Preset
from benchkit.plugin.spec import Spec


def _pair(left: float, right: float, digits: int) -> str:
    def one(value: float) -> str:
        return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    return f"{one(left)}/{one(right)}"


def paper_table(df: pd.DataFrame, preset: Preset, fmt: str = "github") -> str:
    """The paper's table layout (masks x datasets, ``left/right`` per cell) for this run, with the
    paper's columns beside ours: each dataset of the run, followed by the paper's column for it
    when the paper has one, then the paper's remaining columns. ``—`` marks a method that did not
    run (for example, no checkpoint for that dataset)."""
    if preset.pair is None:
        raise ValueError(f"preset '{preset.name}' has no paper table")
    left, right = preset.pair
    means = df.groupby(["dataset", "mask", "method"])[preset.metric].mean() if not df.empty else pd.Series()
    # the pair names plugins: a run's row of that plugin may carry options (gan[iterations=300])
    by_name: dict[str, str] = {}
    for method in dict.fromkeys(df.method if not df.empty else []):
        by_name.setdefault(Spec.parse(method, "method").name, method)
    left_row, right_row = by_name.get(left, left), by_name.get(right, right)
    ours = list(dict.fromkeys(df.dataset)) if not df.empty else []
    columns: list[tuple[str, str]] = []
    for dataset in ours:
        columns.append((f"{dataset} (benchkit)", dataset))
        if dataset in preset.paper:
            columns.append((f"{preset.labels[dataset]} (paper)", "paper:" + dataset))
    columns += [(f"{preset.labels[d]} (paper)", "paper:" + d) for d in preset.paper if d not in ours]
    rows = []
    for mask in preset.masks:
        row = [mask]
        for _, source in columns:
            if source.startswith("paper:"):
                published = preset.paper[source[6:]][mask]
                row.append(_pair(published[0], published[1], digits=1))
            else:
                values = [means.get((source, mask, m), math.nan) for m in (left_row, right_row)]
                row.append(_pair(values[0], values[1], digits=2))
        rows.append(row)
    title = (f"{preset.description}\n{preset.metric} of {left} / {right}; "
             f"benchkit columns: mean over this run's test images\n\n")
    headers = ["mask"] + [label for label, _ in columns]
    if fmt == "csv":
        return pd.DataFrame(rows, columns=headers).to_csv(index=False)
    if fmt == "latex":
        return "".join(f"% {line}\n" for line in title.strip().splitlines()) + \
            tabulate(rows, headers, tablefmt="latex_booktabs")
    return title + tabulate(rows, headers, tablefmt="github")
