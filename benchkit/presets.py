"""Named experiment settings (``benchkit run --preset NAME``) with the paper's numbers beside ours.

``yeh2017`` is Table 1 of Yeh et al. 2017: datasets CelebA, SVHN and Stanford Cars, the four
masks, the Context Encoder against the paper's method, PSNR in dB on the test sets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from tabulate import tabulate


@dataclass(frozen=True)
class Preset:
    """A run configuration and the published table it reproduces.

    ``paper[dataset][mask]`` holds the published (left, right) values for the method pair
    ``pair``; ``labels`` gives the paper's name of each dataset.
    """

    name: str
    description: str
    datasets: tuple[str, ...]
    masks: tuple[str, ...]
    methods: tuple[str, ...]
    pair: tuple[str, str]
    metric: str
    paper: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


YEH2017 = Preset(
    name="yeh2017",
    description="Yeh et al. 2017, Table 1: PSNR (dB) of CE / ours on CelebA, SVHN and Cars, four masks",
    datasets=("celeba", "svhn", "cars"),
    masks=("center", "pattern", "random", "half"),
    methods=("ce", "gan"),
    pair=("ce", "gan"),
    metric="psnr",
    paper={
        "celeba": {"center": (21.3, 19.4), "pattern": (19.2, 17.4), "random": (20.6, 22.8), "half": (15.5, 13.7)},
        "svhn": {"center": (22.3, 19.0), "pattern": (22.3, 19.8), "random": (24.1, 33.0), "half": (19.1, 14.6)},
        "cars": {"center": (14.1, 13.5), "pattern": (14.0, 14.1), "random": (16.1, 18.9), "half": (12.6, 11.1)},
    },
    labels={"celeba": "CelebA", "svhn": "SVHN", "cars": "Cars"},
)

PRESETS = {YEH2017.name: YEH2017}


def _pair(left: float, right: float, digits: int) -> str:
    def one(value: float) -> str:
        return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    return f"{one(left)}/{one(right)}"


def paper_table(df: pd.DataFrame, preset: Preset, fmt: str = "github") -> str:
    """The paper's table layout (masks x datasets, ``left/right`` per cell) for this run, with the
    paper's columns beside ours: each dataset of the run, followed by the paper's column for it
    when the paper has one, then the paper's remaining columns. ``—`` marks a method that did not
    run (for example, no checkpoint for that dataset)."""
    left, right = preset.pair
    means = df.groupby(["dataset", "mask", "method"])[preset.metric].mean() if not df.empty else pd.Series()
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
                row.append(_pair(*preset.paper[source[6:]][mask], digits=1))
            else:
                values = [means.get((source, mask, m), math.nan) for m in (left, right)]
                row.append(_pair(*values, digits=2))
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
