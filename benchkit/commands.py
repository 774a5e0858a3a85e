"""Handlers of ``benchkit run``, ``list``, ``info``, ``report``, ``score``, ``data`` and ``train``.

Each takes the parsed arguments (with ``args.argv``, the command line) and returns the exit code, as
the handlers of plugins' subcommands do (parsing: :mod:`benchkit.cli`).
"""
from __future__ import annotations

import argparse
import inspect
import os
import shlex
from pathlib import Path

import pandas as pd

from benchkit.defaults import DEFAULT_DATASET, DEFAULT_METRICS, PAPER_MASKS, parse_options
from benchkit.errors import UserError
from benchkit.spec import Spec


def cmd_run(args: argparse.Namespace) -> int:
    from benchkit.evaluation import ceilings
    from benchkit.pictures import save_grids
    from benchkit.presets import paper_table
    from benchkit.registry import Registry
    from benchkit.results import failures, load_tables
    from benchkit.runner import RunConfig, metric_batch_size, run
    from benchkit.tables import format_tables

    preset = Registry().create("preset", args.preset) if args.preset else None
    if args.executor == "inprocess" and args.scheduler:
        args.executor = "dask"  # --scheduler ADDRESS alone means: run on that Dask cluster
    if args.executor == "inprocess" and args.workers is not None:
        raise UserError("--workers needs a parallel executor: add --executor processes or --executor dask")
    # an empty list (``--methods ,``) stays empty and is refused by the runner; only None means "default"
    methods = args.methods if args.methods is not None else (list(preset.methods) if preset else None)
    datasets = args.datasets if args.datasets is not None else (
        list(preset.datasets) if preset else [DEFAULT_DATASET])
    masks = args.masks if args.masks is not None else (list(preset.masks) if preset else list(PAPER_MASKS))
    metrics = args.metrics if args.metrics is not None else list(DEFAULT_METRICS)
    config = RunConfig(methods=methods, datasets=datasets, masks=masks, metrics=metrics,
                       n_images=args.n_images, seed=args.seed, batch_size=args.batch_size, device=args.device,
                       out=args.out, force=args.force, data_dir=args.data_dir,
                       models_dir=str(args.models_dir) if args.models_dir else None,
                       options=parse_options(args.option), command="benchkit " + shlex.join(args.argv),
                       optional_datasets=bool(preset and not args.datasets),
                       optional_methods=bool(preset),  # a preset skips methods with no model for a dataset
                       executor=args.executor, shard_size=args.shard_size,
                       executor_options={"workers": args.workers, "scheduler": args.scheduler},
                       weights_dir=str(args.weights_dir) if args.weights_dir else None)
    outcome = run(config)
    for note in outcome.notes:
        print(f"note: {note}")
    if outcome.skipped:
        print(f"{len(outcome.skipped)} finished cells reused from {args.out} (--force redoes them)")
    if outcome.reused_shards:
        print(f"{outcome.reused_shards} finished shards of unfinished cells reused from {args.out}")
    df, sets = load_tables(args.out)
    wanted = set(outcome.keys)  # this command's cells, not others an earlier run left in the folder
    df = df[pd.Series([key in wanted for key in zip(df.dataset, df["mask"], df.method)], index=df.index,
                      dtype=bool)]
    sets = sets[[key in wanted for key in zip(sets.dataset, sets["mask"], sets.method)]]
    # the default metrics print PSNR and SSIM (all are in the folder); metrics named with --metrics all print
    shown = ["psnr", "ssim"] if args.metrics is None else metrics
    print(format_tables(df, shown, args.format, sets=sets))
    for spec, metrics in outcome.metrics.items():
        split = outcome.splits[spec]
        values = ceilings(metrics, split.images, split.labels, metric_batch_size(config), args.device)
        for name, value in values.items():
            print(f"\nceiling: {name} of the ground-truth images themselves is {value:.3f} on {spec} "
                  f"({len(split.images)} images)")
    if preset:
        print("\n" + paper_table(df, preset, args.format))
    present = set(zip(df.dataset, df["mask"], df.method))
    finished = [key for key in outcome.keys if key in present]  # this command's cells, in its order
    grids = save_grids(args.out, cells=finished, errors=args.grid_errors)
    if grids:
        print(f"\ncomparison grids: {grids[0].parent}/ ({len(grids)} PNG files)")
    print(f"per-image results: benchkit.load_results('{args.out}')")
    if outcome.failed:
        failed = failures(args.out)
        failed = failed[[key in wanted for key in zip(failed.dataset, failed["mask"], failed.method)]]
        print(f"\n{len(outcome.failed)} of {len(outcome.cells)} cells failed (a method, or a metric column) "
              f"(tracebacks: benchkit.results.failures('{args.out}')):\n" + failure_table(failed))
        return 1
    return 0


def failure_table(failed: pd.DataFrame) -> str:
    """:func:`benchkit.results.failures` as a table: dataset, mask, method, error (first line)."""
    from tabulate import tabulate

    rows = [(r.dataset, r.mask, r.method, (str(r.error).splitlines() or [""])[0][:200]) for r in failed.itertuples()]
    return tabulate(rows, headers=["dataset", "mask", "method", "error"], tablefmt="github")


def cmd_report(args: argparse.Namespace) -> int:
    from benchkit.results import failures, load_tables, metric_columns
    from benchkit.tables import format_tables

    df, sets = load_tables(args.path)
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
    print(format_tables(df, metric_columns(df) + metric_columns(sets) + ["seconds"], args.format, sets=sets))
    failed = failures(args.path)
    if len(failed):
        print(f"\n{len(failed)} failed cells:\n" + failure_table(failed))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from benchkit.results import load_tables
    from benchkit.scoring import score
    from benchkit.tables import format_tables

    from benchkit.validation import parse_device

    parse_device(args.device)
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    notes, metric_failures = score(args.path, args.metrics, device=args.device, batch_size=args.batch_size,
                                   models_dir=str(args.models_dir) if args.models_dir else None,
                                   weights_dir=str(args.weights_dir) if args.weights_dir else None)
    for note in notes:
        print(f"note: {note}")
    df, sets = load_tables(args.path)
    print(format_tables(df, args.metrics, args.format, sets=sets))
    return 1 if metric_failures else 0


def cmd_data(args: argparse.Namespace) -> int:
    from benchkit.registry import Registry

    root = args.data_dir or Path(os.environ.get("BENCHKIT_DATA", "data"))
    dataset = Registry().create("dataset", args.dataset)
    folder = dataset.download(root / args.dataset)
    print(f"{args.dataset} downloaded to {folder}; use --data-dir {root} or BENCHKIT_DATA={root}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchkit.registry import Registry

    rows = [(p.kind, p.name, p.description, p.distribution) for p in Registry().all()]
    print(tabulate(rows, headers=["kind", "name", "description", "distribution"]))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print each plugin called NAME (a method and a trainer may share one): kind, distribution,
    description and its options with their types, defaults, ranges and descriptions."""
    from tabulate import tabulate

    from benchkit.options import option_specs
    from benchkit.registry import KINDS, Registry

    registry = Registry()
    found = [registry.get(kind, args.name) for kind in KINDS if args.name in registry.names(kind)]
    if not found:
        registry.get("method", args.name)  # the unknown-name error, with "did you mean"
    for info in found:
        print(f"{info.kind} {info.name} (from {info.distribution}): {info.description}")
        if info.kind == "preset":
            print(f"  datasets {', '.join(info.cls.datasets)}; masks {', '.join(info.cls.masks)}; "
                  f"methods {', '.join(info.cls.methods)}\n")
            continue
        specs = [s for s in option_specs(info.cls).values() if s.name != "data_dir"]
        if not specs:
            print("  no options\n")
            continue
        rows = [(s.name, s.type_name(), "" if s.default is inspect.Parameter.empty else repr(s.default),
                 s.range.describe() if s.range else "", s.doc) for s in specs]
        flag = "-o KEY=VALUE" if info.kind == "trainer" else f"-o {info.name}.KEY=VALUE"
        print(f"  options ({flag}):")
        print(tabulate(rows, headers=["option", "type", "default", "valid", "description"], tablefmt="github") + "\n")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from benchkit.registry import Registry
    from benchkit.validation import parse_device
    from benchkit.training import TrainConfig

    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs and --batch-size must be at least 1")
    if args.seed < 0 or (args.max_minutes is not None and not args.max_minutes > 0):
        raise UserError("--seed must be >= 0, and --max-minutes > 0")
    parse_device(args.device)
    registry = Registry()
    options = parse_options(args.option, prefix_required=False)
    dataset_name = Spec.parse(args.dataset, "dataset").name
    unknown = set(options) - {"", args.model, dataset_name, *(Spec.parse(m, "mask").name for m in args.masks)}
    if unknown:
        raise UserError(f"-o {sorted(unknown)[0]}.*: `benchkit train {args.model}` takes trainer options as "
                        f"-o KEY=VALUE, and -o {dataset_name}.KEY=VALUE for the dataset")
    trainer = registry.create("trainer", args.model, options.get("", {}) | options.get(args.model, {}))
    dataset = registry.create("dataset", args.dataset, options.get(dataset_name, {}) | (
        {"data_dir": args.data_dir} if args.data_dir and registry.accepts("dataset", args.dataset, "data_dir") else {}))
    masks = ({name: registry.create("mask", name, options.get(Spec.parse(name, "mask").name, {})) for name in args.masks}
             if trainer.needs_masks else {})
    if trainer.needs_masks and not masks:
        raise UserError("--masks is empty: name the training masks, e.g. --masks center,random")
    images = dataset.images_uint8("train")  # converted to float one batch at a time
    if len(images) < args.batch_size:
        raise UserError(f"dataset '{args.dataset}' has {len(images)} training images, fewer than --batch-size "
                        f"{args.batch_size}: no batch could be trained; lower --batch-size or add images")
    if images.shape[2] != images.shape[3] or images.shape[2] not in (32, 64, 128):
        raise UserError(f"dataset '{args.dataset}' has {images.shape[2]}x{images.shape[3]} images: the networks "
                        "take 32, 64 or 128 px squares; resize them (e.g. -o folder.size=64)")
    extra = {}
    if trainer.needs_labels:
        extra["labels"] = dataset.labels("train")
        if extra["labels"] is None or len(extra["labels"]) != len(images):
            raise UserError(f"`benchkit train {args.model}` needs class labels, and dataset '{args.dataset}' has "
                            f"{'none' if extra['labels'] is None else 'fewer than images'}: use a labelled dataset")
        test_labels = dataset.labels("test")
        extra["test"] = (dataset.images_uint8("test"), test_labels) if test_labels is not None else None
    config = TrainConfig(dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
                         seed=args.seed, device=args.device, max_minutes=args.max_minutes)
    path = trainer.train(images, config, args.out, "benchkit " + shlex.join(args.argv), masks, **extra)
    print(f"model written to {path}")
    return 0
