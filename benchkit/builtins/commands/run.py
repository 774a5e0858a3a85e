"""``benchkit run``: methods x datasets x masks, then tables, ceilings, the paper table and grids."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import pandas as pd

from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.options import option_specs
from benchkit.run.defaults import DEFAULT_N_IMAGES, DEFAULT_OUT, DEFAULT_PRESET, batch_size, csv_list, parse_options
from benchkit.run.evaluation import HOLE_BINS

DEFAULT_EXECUTOR = "inprocess"
FORMATS = ["github", "latex", "csv"]
WEIGHTS_HELP = ("folder searched first for pretrained metric weights (FID's Inception, LPIPS); default "
                "$BENCHKIT_WEIGHTS; `benchkit weights list` shows the files")


def out_folder(text: str) -> Path:
    """``--out``: a folder name; an empty one would write into the current folder, so it is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty --out would write into the current folder: name a folder, "
                                         "e.g. --out results/mine")
    return Path(text)


@hookimpl(tryfirst=True)  # benchkit's own commands head `benchkit --help`
def register_commands(subparsers, registry):
    default = registry.create("preset", DEFAULT_PRESET)
    run = subparsers.add_parser(
        "run", help="inpaint test images: methods x datasets x masks, then print tables",
        description=f"Run methods x datasets x masks and print tables. With no flags: {default.description}, "
        f"the first {DEFAULT_N_IMAGES} test images: about 3 minutes on 2 CPU cores. Each entry of --methods, "
        "--masks, --datasets and --metrics may carry inline options, NAME[KEY=VALUE,...]. "
        "Rerunning the same command resumes and skips finished cells.")
    run.add_argument("--preset", metavar="NAME", help="a paper's setting (see `benchkit list`); --datasets, --masks "
                     "and --methods override its choices, datasets not on disk are skipped with a note, and the "
                     "paper's table is printed beside ours")
    run.add_argument("--methods", type=csv_list, action="extend",
                     help="comma-separated methods, each NAME or NAME[KEY=VALUE,...], e.g. "
                     "\"gan[iterations=300],gan,tv\" (default: all available)")
    run.add_argument("--masks", type=csv_list, action="extend", help=f"default: {','.join(default.masks)}")
    run.add_argument("--datasets", type=csv_list, action="extend",
                     help=f"default: {','.join(default.datasets)}; list flags may be repeated, and a comma inside a "
                     "name (a path) is written \\, (folder:/data/photos\\, 2023)")
    run.add_argument("--metrics", type=csv_list, action="extend",
                     help=f"default: {','.join(default.metrics)} (tables for {' and '.join(default.shown)}); metrics "
                     "named here all get tables; set metrics (fid-fmnist, kid-fmnist, fid, kid) give one score "
                     "per cell")
    run.add_argument("--n-images", type=int, default=DEFAULT_N_IMAGES,
                     help=f"first N test images of each dataset (default {DEFAULT_N_IMAGES}; 0 means all)")
    run.add_argument("--seed", type=int, default=0, help="seed of masks and methods (default 0, >= 0)")
    run.add_argument("--batch-size", type=batch_size, default=None, metavar="N|auto",
                     help="images per method call (default auto: each method's preferred size for the device, "
                     "64 for every built-in method on a CPU)")
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    run.add_argument("--out", type=out_folder, default=Path(DEFAULT_OUT), help=f"run folder (default {DEFAULT_OUT})")
    run.add_argument("--force", action="store_true",
                     help="redo this run's cells that are already finished (other cells in --out are kept); "
                     "also writes a new manifest over a corrupt one")
    run.add_argument("--replace-folder", action="store_true",
                     help="delete every cell in --out first, other runs' too (a note says how many of which "
                     "methods); needed to reuse a folder with another --seed or --n-images")
    run.add_argument("--data-dir", help="folder searched first for dataset files")
    run.add_argument("--models-dir", type=Path, help="folder searched first for trained checkpoints")
    run.add_argument("--weights-dir", type=Path, help=WEIGHTS_HELP)
    run.add_argument("-o", "--option", action="append", default=[], metavar="PLUGIN.KEY=VALUE",
                     help="plugin option for every entry of that name that does not set it inline, e.g. "
                     "-o gan.iterations=300 (repeatable; `benchkit info NAME` lists them)")
    run.add_argument("--executor", metavar="NAME",
                     help=f"where shards run: {', '.join(registry.names('executor'))} (default {DEFAULT_EXECUTOR})")
    run.add_argument("--workers", type=int, help="parallel executors: number of worker processes (default 2)")
    run.add_argument("--shard-size", type=int, help="images per shard (default: the executor's)")
    run.add_argument("--threads", type=int, help="torch threads per worker (default: the cores this process may use, "
                     "divided among the workers); use 1 when other jobs share the CPU")
    run.add_argument("--bins", choices=sorted(HOLE_BINS), default=None,
                     help="also score set metrics (FID ...) per hole-area bin: lama (10 bins of 0.1, LaMa's "
                          "evaluator) or comodgan (5 of 0.2)")
    for info in registry.all():
        if info.kind == "executor":
            info.cls.add_arguments(run)  # flags of one executor (dask: --scheduler)
    run.add_argument("--format", default="github", choices=FORMATS)
    run.add_argument("--grid-errors", action="store_true",
                     help="add error images |x - x_hat| x 2 to the comparison grids (as in the paper's Fig. 12)")
    run.set_defaults(handler=cmd_run)


def choose_executor(args: argparse.Namespace, registry) -> tuple[str, dict]:
    """The executor and its options from the flags: ``--executor``, or, when it is not given, the one
    executor that takes every executor flag given (``--scheduler ADDRESS`` alone means dask)."""
    flags = {}
    for info in registry.all():
        if info.kind == "executor":
            for name in option_specs(info.cls):
                if getattr(args, name, None) is not None:
                    flags[name] = getattr(args, name)
    if args.executor:
        return args.executor, flags
    takes = [name for name in registry.names("executor")
             if set(flags) <= set(option_specs(registry.get("executor", name).cls))]
    if not flags or DEFAULT_EXECUTOR in takes:
        return DEFAULT_EXECUTOR, flags
    if len(takes) == 1:
        return takes[0], flags
    others = " or ".join(f"--executor {name}" for name in takes) or "an executor that takes them"
    raise UserError(f"--{sorted(flags)[0]} needs a parallel executor: add {others}")


def cmd_run(args: argparse.Namespace) -> int:
    from benchkit.report.paper import paper_table
    from benchkit.report.pictures import save_grids
    from benchkit.report.tables import format_tables
    from benchkit.run.evaluation import ceilings
    from benchkit.run.runner import RunConfig, metric_batch_size, run
    from benchkit.store.results import failures, load_tables, run_display

    registry = args.registry
    preset = registry.create("preset", args.preset) if args.preset else None
    default = registry.create("preset", DEFAULT_PRESET)
    executor, executor_options = choose_executor(args, registry)
    # an empty list (``--methods ,``) stays empty and is refused by the runner; only None means "default"
    methods = args.methods if args.methods is not None else (list(preset.methods or ()) or None if preset else None)
    config = RunConfig(methods=methods,
                       datasets=args.datasets if args.datasets is not None else list((preset or default).datasets),
                       masks=args.masks if args.masks is not None else list((preset or default).masks),
                       metrics=args.metrics if args.metrics is not None else list(
                           (preset.metrics if preset else ()) or default.metrics),
                       n_images=args.n_images, seed=args.seed, batch_size=args.batch_size, device=args.device,
                       out=args.out, force=args.force, replace_folder=args.replace_folder,
                       data_dir=args.data_dir,
                       models_dir=str(args.models_dir) if args.models_dir else None,
                       options=parse_options(args.option), command="benchkit " + shlex.join(args.argv),
                       optional_datasets=bool(preset and not args.datasets),
                       optional_methods=bool(preset),  # a preset skips methods with no model for a dataset
                       executor=executor, shard_size=args.shard_size, threads=args.threads,
                       executor_options=executor_options, bins=args.bins,
                       weights_dir=str(args.weights_dir) if args.weights_dir else None)
    outcome = run(config, registry)
    for note in outcome.notes:
        print(f"note: {note}")
    if outcome.skipped:
        print(f"{len(outcome.skipped)} finished cells reused from {args.out} (--force redoes them)")
    if outcome.reused_shards:
        print(f"{outcome.reused_shards} finished shards of unfinished cells reused from {args.out}")
    df, sets = load_tables(args.out)
    wanted = set(outcome.plan.keys)  # this command's cells, not others an earlier run left in the folder
    df = df[pd.Series([key in wanted for key in zip(df.dataset, df["mask"], df.method)], index=df.index,
                      dtype=bool)]
    sets = sets[[key in wanted for key in zip(sets.dataset, sets["mask"], sets.method)]]
    # metrics named with --metrics all print; without it, the default preset's `shown` (all are in the folder)
    chosen = preset if preset is not None and (preset.shown or preset.metrics) else default
    shown = list(outcome.plan.display["metrics"]) if args.metrics is not None else list(chosen.shown or chosen.metrics)
    print(format_tables(df, shown, args.format, sets=sets, display=run_display(args.out)))
    for spec, metrics in outcome.plan.metrics.items():
        split = outcome.plan.splits[spec]
        values = ceilings(metrics, split.images, split.labels, metric_batch_size(config), args.device)
        for name, value in values.items():
            print(f"\nceiling: {name} of the ground-truth images themselves is {value:.3f} on {spec} "
                  f"({len(split.images)} images)")
    if preset and preset.pair:
        print("\n" + paper_table(df, preset, args.format))
    present = set(zip(df.dataset, df["mask"], df.method))
    finished = [key for key in outcome.plan.keys if key in present]  # this command's cells, in its order
    grids = save_grids(args.out, pairs=[(d, k) for d, k, _ in finished], errors=args.grid_errors)
    if grids:
        print(f"\ncomparison grids: {grids[0].parent}/ ({len(grids)} PNG files)")
    print(f"per-image results: benchkit.load_results('{args.out}')")
    if outcome.failed:
        failed = failures(args.out)
        failed = failed[[key in wanted for key in zip(failed.dataset, failed["mask"], failed.method)]]
        print(f"\n{len(outcome.failed)} of {len(outcome.plan.cells)} cells failed (a method, or a metric column) "
              f"(tracebacks: benchkit.store.results.failures('{args.out}')):\n" + failure_table(failed))
        return 1
    return 0


def failure_table(failed: pd.DataFrame) -> str:
    """:func:`benchkit.store.results.failures` as a table: dataset, mask, method, error (first line)."""
    from tabulate import tabulate

    rows = [(r.dataset, r.mask, r.method, (str(r.error).splitlines() or [""])[0][:200]) for r in failed.itertuples()]
    return tabulate(rows, headers=["dataset", "mask", "method", "error"], tablefmt="github")
