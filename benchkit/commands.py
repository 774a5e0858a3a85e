"""Handlers of ``benchkit run``, ``report`` and ``data`` (kept apart from argument parsing)."""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

import pandas as pd

from benchkit.errors import UserError


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    from benchkit.cli import DEFAULT_DATASET, PAPER_MASKS, _csv, _options
    from benchkit.pictures import save_grids
    from benchkit.presets import PRESETS, paper_table
    from benchkit.results import load_results
    from benchkit.runner import RunConfig, run
    from benchkit.tables import format_tables

    preset = PRESETS[args.preset] if args.preset else None
    # an empty list (``--methods ,``) stays empty and is refused by the runner; only None means "default"
    methods = args.methods if args.methods is not None else (list(preset.methods) if preset else None)
    datasets = args.datasets if args.datasets is not None else (
        list(preset.datasets) if preset else [DEFAULT_DATASET])
    masks = args.masks if args.masks is not None else (list(preset.masks) if preset else _csv(PAPER_MASKS))
    config = RunConfig(methods=methods, datasets=datasets, masks=masks, metrics=args.metrics,
                       n_images=args.n_images, seed=args.seed, batch_size=args.batch_size, device=args.device,
                       out=args.out, force=args.force, data_dir=args.data_dir,
                       models_dir=str(args.models_dir) if args.models_dir else None,
                       options=_options(args.option), command="benchkit " + shlex.join(argv),
                       optional_datasets=bool(preset and not args.datasets),
                       optional_methods=bool(preset))  # a preset skips methods with no model for a dataset
    outcome = run(config)
    for note in outcome.notes:
        print(f"note: {note}")
    if outcome.skipped:
        print(f"{len(outcome.skipped)} finished cells reused from {args.out} (--force redoes them)")
    df = load_results(args.out)
    wanted = set(outcome.cells)  # this command's cells, not others an earlier run left in the folder
    df = df[pd.Series([key in wanted for key in zip(df.dataset, df["mask"], df.method)], index=df.index,
                      dtype=bool)]
    shown = [m for m in ("psnr", "ssim") if m in args.metrics] or args.metrics
    print(format_tables(df, shown, args.format))
    if preset:
        print("\n" + paper_table(df, preset, args.format))
    present = set(zip(df.dataset, df["mask"], df.method))
    finished = [key for key in outcome.cells if key in present]  # this command's cells, in its order
    grids = save_grids(args.out, cells=finished, errors=args.grid_errors)
    if grids:
        print(f"\ncomparison grids: {grids[0].parent}/ ({len(grids)} PNG files)")
    print(f"per-image results: benchkit.load_results('{args.out}')")
    if outcome.failed:
        print(f"\n{len(outcome.failed)} of {len(outcome.cells)} cells failed "
              f"(tracebacks: benchkit.results.failures('{args.out}')):\n" + failure_table(outcome.failed))
        return 1
    return 0


def failure_table(records) -> str:
    """The failed cells as a table: dataset, mask, method, error (first line)."""
    from tabulate import tabulate

    rows = [(r["dataset"], r["mask"], r["method"], str(r["error"]).splitlines()[0][:200]) for r in records]
    return tabulate(rows, headers=["dataset", "mask", "method", "error"], tablefmt="github")


def cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    from benchkit.results import failures, load_results
    from benchkit.tables import format_tables

    df = load_results(args.path)
    if args.html is not None:
        from benchkit.report import write_html

        target = Path(args.html) if args.html else args.path / "report.html"
        try:
            path = write_html(args.path, target, errors=args.errors)
        except OSError as exc:
            raise UserError(f"cannot write the report to {target} ({exc.strerror or exc}): "
                            "give another --html FILE") from exc
        print(f"report written to {path} (self-contained; open it in any browser)")
        return 0
    metrics = [c for c in df.columns if c not in ("dataset", "mask", "method", "image_id", "seconds",
                                                   "missing_fraction")]
    print(format_tables(df, metrics + ["seconds"], args.format))
    failed = failures(args.path)
    if len(failed):
        print(f"\n{len(failed)} failed cells:\n" + failure_table(failed.to_dict("records")))
    return 0


def cmd_data(args: argparse.Namespace, argv: list[str]) -> int:
    from benchkit.registry import Registry

    root = args.data_dir or Path(os.environ.get("BENCHKIT_DATA", "data"))
    dataset = Registry().create("dataset", args.dataset)
    folder = dataset.download(root / args.dataset)
    print(f"{args.dataset} downloaded to {folder}; use --data-dir {root} or BENCHKIT_DATA={root}")
    return 0
