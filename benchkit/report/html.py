"""``benchkit report PATH --html``: one self-contained HTML file of a run, that opens offline.

It holds the run manifest, the summary tables, the comparison grids (PNG, embedded as data URIs),
per-method PSNR distributions (inline SVG box plots), results binned by the fraction of the image
that is missing, and paired statistics for every pair of methods (:mod:`benchkit.report.stats`). Nothing
is fetched from the network: no scripts, fonts or style sheets from elsewhere.
"""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from benchkit.files import atomic_write_text
from benchkit.report.pictures import grid_png, run_cells
from benchkit.report.stats import compare_all, compare_to
from benchkit.report.svgplot import box_plot_svg
from benchkit.report.tables import format_tables
from benchkit.run.evaluation import bin_index, bin_names
from benchkit.store.cells import read_manifest
from benchkit.store.results import RunDisplay, failures, load_tables, metric_columns, run_display

STYLE = """body{font-family:sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right;white-space:pre}th{background:#f3f3f3}td:first-child{text-align:left}
td.wrap{white-space:pre-wrap;overflow-wrap:anywhere;text-align:left;max-width:60em}
h2{border-bottom:2px solid #ddd;margin-top:2em}img{max-width:100%;image-rendering:pixelated}
.sig{background:#e3f4e3}.plots{display:flex;flex-wrap:wrap;gap:1em}pre{background:#f7f7f7;
padding:1em;overflow:auto}.note{color:#666}.scroll{overflow-x:auto;max-width:100%}"""
REPORT_BINS = "lama"  # missing-fraction bins of width 0.1, assigned by the one rule (run.evaluation.bin_index)


def _section(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    anchor = escape(title.lower().replace(" ", "-"))
    return f'<section><h2 id="{anchor}">{escape(title)}</h2>{note_html}{body}</section>'


def _table(frame: pd.DataFrame, highlight: pd.Series | None = None, wrap: int = 80) -> str:
    """An HTML table; a cell longer than ``wrap`` characters (a long command) wraps instead of
    widening the table past the page."""
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cls = ' class="sig"' if highlight is not None and bool(highlight.iloc[i]) else ""
        cells = (f'<td class="wrap">{escape(str(v))}</td>' if len(str(v)) > wrap else f"<td>{escape(str(v))}</td>"
                 for v in row)
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def manifest_section(manifest: dict, df: pd.DataFrame | None = None) -> str:
    """The run's command, status, seed, versions and hardware; "images per dataset" counts the images
    that have results in ``df`` (a folder may hold fewer than ``--n-images`` asked for)."""
    def part(key: str) -> dict:  # a hand-edited manifest may hold anything
        value = manifest.get(key)
        return value if isinstance(value, dict) else {}

    keys = [("command", manifest.get("command")), ("status", manifest.get("status")),
            ("started", manifest.get("started")), ("finished", manifest.get("finished")),
            ("seed", part("settings").get("seed")),
            ("images per dataset", _images_per_dataset(df) if df is not None and not df.empty
             else part("settings").get("n_images")),
            ("versions", ", ".join(f"{k} {v}" for k, v in part("versions").items())),
            ("hardware", ", ".join(f"{k} {v}" for k, v in part("hardware").items()))]
    table = _table(pd.DataFrame(keys, columns=["", "value"]))
    raw = escape(json.dumps(manifest, indent=2, default=str))
    return _section("Run", table + f"<details><summary>manifest.json</summary><pre>{raw}</pre></details>")


def _images_per_dataset(df: pd.DataFrame) -> str:
    counts = df.groupby("dataset", sort=False).image_id.nunique()
    if len(counts) == 1:
        return str(int(counts.iloc[0]))
    return ", ".join(f"{dataset} {int(n)}" for dataset, n in counts.items())


def grids_section(run_dir: Path, df: pd.DataFrame, errors: bool) -> str:
    images = []
    cells = run_cells(run_dir)  # read once: every cell file, methods in the run's order
    pairs = list(dict.fromkeys(zip(df.dataset, df["mask"])))
    order = run_display(run_dir).ordered("masks", df["mask"])
    for dataset, mask in sorted(pairs, key=lambda p: (df.dataset.unique().tolist().index(p[0]), order.index(p[1]))):
        methods = [m for d, k, m in cells if (d, k) == (dataset, mask)]
        png = grid_png(run_dir, dataset, mask, methods=methods, errors=errors)
        if png is not None:
            data = base64.b64encode(png).decode()
            images.append(f'<figure><img alt="{escape(dataset)} / {escape(mask)} comparison grid" '
                          f'src="data:image/png;base64,{data}"><figcaption>{escape(dataset)} / '
                          f'{escape(mask)}</figcaption></figure>')
    note = ("Rows: test images chosen by the run's seed. Columns: the input with its holes in blue, each "
            "method's composite" + (", its error |x - x̂| × 2" if errors else "") + ", the ground truth.")
    return _section("Comparison grids", "".join(images) or "<p>No pictures were kept.</p>", note)


def distributions_section(df: pd.DataFrame, display: RunDisplay, metric: str, note: str = "") -> str:
    plots = []
    unit = display.metric(metric).unit
    label = f"{metric} ({unit})" if unit else metric
    for dataset, part in df.groupby("dataset", sort=False):
        for mask in display.ordered("masks", part["mask"]):
            cell = part[part["mask"] == mask]
            groups = {m: cell[cell.method == m][metric].to_numpy() for m in dict.fromkeys(cell.method)}
            plots.append(box_plot_svg(groups, f"{dataset} / {mask}", label))
    return _section(f"{metric.upper()} distributions", f'<div class="plots">{"".join(plots)}</div>',
                    note + "Box: quartiles and median; whiskers: 1.5 IQR; dots: images beyond; red diamond: mean.")


def missing_fraction_section(df: pd.DataFrame, metric: str, note: str = "") -> str:
    bodies = []
    names = bin_names(REPORT_BINS)
    for dataset, part in df.groupby("dataset", sort=False):
        index = pd.Series(bin_index(part.missing_fraction, REPORT_BINS), index=part.index, name="bin")
        values = pd.to_numeric(part[metric], errors="coerce").where(lambda v: np.isfinite(v))
        table = values.groupby([part.method, index], sort=False).agg(["mean", "count"])
        wide = table.apply(lambda r: _mean_count(r["mean"], int(r["count"])), axis=1).unstack("bin")
        wide = wide[sorted(wide.columns)]
        wide.columns = [f"{names[i]} missing" for i in wide.columns]
        bodies.append(f"<h4>{escape(dataset)}</h4>" + _scrolling(_table(wide.fillna("").reset_index())))
    return _section("By missing fraction", "".join(bodies),
                    f"{note}Mean {metric} of the images whose fraction of missing pixels falls in each bin "
                    "(LaMa's bins, as --bins lama assigns them), all masks together.")


def _mean_count(mean: float, count: int) -> str:
    return f"{mean:.2f} (n={count})" if count and np.isfinite(mean) else f"– (n={count})"


def statistics_section(df: pd.DataFrame, metrics: tuple[str, ...], reference: str, all_pairs: bool = False) -> str:
    """Paired differences against ``reference``, or between every pair with ``all_pairs``;
    significance is judged on Holm-adjusted p-values over every row shown."""
    if df.method.nunique() < 2:
        return _section("Paired statistics", "<p>Only one method: nothing to compare.</p>")
    table = compare_all(df, metrics) if all_pairs else compare_to(df, reference, metrics)
    if table.empty:
        return _section("Paired statistics", "<p>No metric to compare.</p>")
    shown = pd.DataFrame({
        "dataset": table.dataset, "mask": table["mask"], "metric": table.metric,
        "a − b": table.method_a + " − " + table.method_b, "n": table.n,
        "mean difference": table["diff"].map(lambda v: f"{v:+.4f}"),
        "95% bootstrap CI": [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(table.ci_low, table.ci_high)],
        "Wilcoxon p": table.p_wilcoxon.map(lambda p: f"{p:.2g}"),
        "Holm p": table.p_holm.map(lambda p: f"{p:.2g}")})
    significant = (table.p_holm < 0.05) & ((table.ci_low > 0) | (table.ci_high < 0))
    against = "between every pair of methods" if all_pairs else f"of each method against {reference}"
    return _section("Paired statistics", _scrolling(_table(shown, significant)),
                    f"Per-image differences a − b {against} (in each metric's unit), paired by image. Green: "
                    f"Holm-adjusted p < 0.05 over the {len(table)} comparisons shown, and a CI that excludes 0. "
                    "`benchkit report --html --reference M` picks the reference, `--all-pairs` compares every "
                    "pair. Also from Python: benchkit.compare(df, method_a, method_b).")


def _scrolling(html: str) -> str:
    """A wide table in a box that scrolls sideways instead of running off the page."""
    return f'<div class="scroll">{html}</div>'


def build_html(run_dir: Path, errors: bool = False, reference: str | None = None, all_pairs: bool = False) -> str:
    """The whole report of a run folder as one HTML document."""
    run_dir = Path(run_dir)
    df, sets = load_tables(run_dir)
    manifest = read_manifest(run_dir) or {}
    display = run_display(run_dir)
    metrics = metric_columns(df) + metric_columns(sets)
    parts = [manifest_section(manifest, df),
             _section("Summary tables", format_tables(df, metrics, "html", sets=sets, display=display),
                      "Per-image metrics: mean ± 95% CI over images. Set metrics (FID, KID ...): one score over "
                      "each cell's images. Best of each column in bold.")]
    if not df.empty:
        parts.append(grids_section(run_dir, df, errors))
        per_image = [m for m in dict.fromkeys([*display.metrics, *metric_columns(df)]) if m in df.columns]
        if per_image:
            primary, note = per_image[0], ""
            parts += [distributions_section(df, display, primary, note), missing_fraction_section(df, primary, note),
                      statistics_section(df, tuple(per_image[:2]),
                                         reference or display.ordered("methods", df.method)[0], all_pairs)]
    failed = failures(run_dir)
    if not failed.empty:
        parts.append(_section("Failed cells", _table(failed)))
    made = datetime.now(UTC).isoformat(timespec="seconds")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>benchkit report: '
            f'{escape(run_dir.name)}</title><style>{STYLE}</style></head><body><h1>benchkit report: '
            f'{escape(run_dir.name)}</h1><p class="note">{escape(str(run_dir))}, made {made}</p>'
            + "".join(parts) + "</body></html>")


def write_html(run_dir: Path, path: Path, errors: bool = False, reference: str | None = None,
               all_pairs: bool = False) -> Path:
    """Write the report atomically to ``path``; returns it."""
    text = build_html(run_dir, errors, reference, all_pairs)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path
