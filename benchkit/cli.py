"""The ``benchkit`` command line: argument parsing and error handling (handlers: :mod:`benchkit.commands`).

Plugins add subcommands through the ``register_commands`` hook.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from benchkit.defaults import (DEFAULT_DATASET, DEFAULT_METRICS, DEFAULT_N_IMAGES, DEFAULT_OUT, METRIC_BATCH_SIZE,
                               PAPER_MASKS, batch_size, csv_list)
from benchkit.errors import Terminated, UserError

PAPER = ",".join(PAPER_MASKS)
DESCRIPTION = ("benchkit: benchmark image inpainting methods on datasets x masks, score them and report. "
               "`benchkit COMMAND --help` describes each command.")
# errors of the system rather than of benchkit: a full disk, a quota, a read-only or forbidden place
SYSTEM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
BUILTIN_COMMANDS = ("run", "list", "info", "report", "score", "data", "train")


WEIGHTS_HELP = ("folder searched first for pretrained metric weights (FID's Inception, LPIPS); default "
                "$BENCHKIT_WEIGHTS; `benchkit weights list` shows the files")


def build_parser(registry=None) -> argparse.ArgumentParser:
    """The argument parser; with a registry, plugins' subcommands are added too."""
    from benchkit import commands

    parser = argparse.ArgumentParser(prog="benchkit", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="inpaint test images: methods x datasets x masks, then print tables",
                         description="Run methods x datasets x masks and print PSNR/SSIM tables. With no "
                         f"flags: every available method, dataset {DEFAULT_DATASET}, masks {PAPER}, "
                         f"the first {DEFAULT_N_IMAGES} test images: about 3 minutes on 2 CPU cores, most of "
                         "it gan's 1500 latent-search iterations (about 2 s per image). "
                         "Rerunning the same command resumes and skips finished cells.")
    run.add_argument("--preset", metavar="NAME",
                     help="a paper's setting (see `benchkit list`): yeh2017 = Table 1 (datasets celeba,svhn,cars; "
                     "the four masks; methods ce,gan); --datasets, --masks and --methods override its choices, "
                     "datasets not on disk are skipped with a note, and the paper's table is printed beside ours")
    run.add_argument("--methods", type=csv_list, action="extend", help="comma-separated methods (default: all available)")
    run.add_argument("--masks", type=csv_list, action="extend", help=f"default: {PAPER}")
    run.add_argument("--datasets", type=csv_list, action="extend",
                     help=f"default: {DEFAULT_DATASET}; list flags may be repeated, and a comma inside a name "
                     "(a path) is written \\, (folder:/data/photos\\, 2023)")
    run.add_argument("--metrics", type=csv_list, action="extend",
                     help=f"default: {','.join(DEFAULT_METRICS)} (tables for psnr and ssim); metrics named here "
                     "all get tables; set metrics (fid-fmnist, kid-fmnist, fid, kid) give one score per cell")
    run.add_argument("--n-images", type=int, default=DEFAULT_N_IMAGES,
                     help=f"first N test images of each dataset (default {DEFAULT_N_IMAGES}: about 3 minutes "
                     "for every method on 2 CPU cores; 0 means all)")
    run.add_argument("--seed", type=int, default=0, help="seed of masks and methods (default 0, >= 0)")
    run.add_argument("--batch-size", type=batch_size, default=None, metavar="N|auto",
                     help="images per method call (default auto: each method's preferred size for the device, "
                     "64 for every built-in method on a CPU)")
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    run.add_argument("--out", type=out_folder, default=Path(DEFAULT_OUT), help=f"run folder (default {DEFAULT_OUT})")
    run.add_argument("--force", action="store_true",
                     help="redo cells that are already finished (also replaces a corrupt results folder)")
    run.add_argument("--data-dir", help="folder searched first for dataset files")
    run.add_argument("--models-dir", type=Path, help="folder searched first for trained checkpoints")
    run.add_argument("--weights-dir", type=Path, help=WEIGHTS_HELP)
    run.add_argument("-o", "--option", action="append", default=[], metavar="PLUGIN.KEY=VALUE",
                     help="plugin option, e.g. -o gan.iterations=300 (repeatable; `benchkit info NAME` lists them)")
    run.add_argument("--executor", default="inprocess", metavar="NAME",
                     help="where shards run: inprocess (default), processes, dask (extra benchkit[dask]), "
                     "or a plugin's")
    run.add_argument("--workers", type=int, help="processes/dask: number of worker processes (default 2)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="dask: address of a running scheduler (tcp://host:8786) instead of a local cluster")
    run.add_argument("--shard-size", type=int,
                     help="images per shard (default: a whole cell in-process, 256 for processes and dask)")
    run.add_argument("--format", default="github", choices=["github", "latex", "csv"])
    run.add_argument("--grid-errors", action="store_true",
                     help="add error images |x - x_hat| x 2 to the comparison grids (as in the paper's Fig. 12)")
    run.set_defaults(handler=commands.cmd_run)

    listing = sub.add_parser("list", help="show every plugin (and preset): kind, name, description, distribution")
    listing.set_defaults(handler=commands.cmd_list)

    info = sub.add_parser("info", help="a plugin's description and options: types, defaults, ranges")
    info.add_argument("name", help="plugin name, e.g. gan or tv")
    info.set_defaults(handler=commands.cmd_info)

    report = sub.add_parser("report", help="print summary tables of a run folder")
    report.add_argument("path", type=Path)
    report.add_argument("--format", default="github", choices=["github", "latex", "csv"])
    report.add_argument("--html", nargs="?", const="", metavar="FILE",
                        help="write one self-contained HTML report (default FILE: PATH/report.html)")
    report.add_argument("--errors", action="store_true", help="HTML: add error images |x - x_hat| x 2 to the grids")
    report.set_defaults(handler=commands.cmd_report)

    scoring = sub.add_parser("score", help="add metrics to a finished run from its kept outputs (no method reruns)")
    scoring.add_argument("path", type=Path)
    scoring.add_argument("--metrics", type=csv_list, required=True, help="comma-separated metrics to add")
    scoring.add_argument("--format", default="github", choices=["github", "latex", "csv"])
    scoring.add_argument("--device", default="cpu", help="torch device of the metrics, e.g. cpu or cuda (default cpu)")
    scoring.add_argument("--batch-size", type=int, default=METRIC_BATCH_SIZE,
                         help=f"images per metric call (default {METRIC_BATCH_SIZE})")
    scoring.add_argument("--models-dir", type=Path, help="folder searched first for trained checkpoints")
    scoring.add_argument("--weights-dir", type=Path, help=WEIGHTS_HELP)
    scoring.set_defaults(handler=commands.cmd_score)

    data = sub.add_parser("data", help="dataset files")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    download = data_sub.add_parser("download", help="download a dataset's files (needs the internet)")
    download.add_argument("dataset")
    download.add_argument("--data-dir", type=Path, help="destination root (default $BENCHKIT_DATA or ./data)")
    download.set_defaults(handler=commands.cmd_data)

    train = sub.add_parser("train", help="train a model for a dataset (`benchkit list` shows the trainers)")
    train.add_argument("model", help="trainer name, e.g. gan or ce")
    train.add_argument("--dataset", required=True)
    train.add_argument("--data-dir")
    train.add_argument("--epochs", type=int, default=25)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--device", default="cpu")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, default=Path("models"), help="output folder (default ./models)")
    train.add_argument("--max-minutes", type=float, help="stop after this long; rerun to resume")
    train.add_argument("--masks", type=csv_list, default=list(PAPER_MASKS),
                       help=f"trainers that use masks (ce): training masks (default {PAPER})")
    train.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                       help="trainer option, e.g. -o width=128 or -o overlap=4 (see `benchkit info NAME`)")
    train.set_defaults(handler=commands.cmd_train)

    if registry is not None:
        registry.register_commands(sub)
    return parser


def out_folder(text: str) -> Path:
    """``--out``: a folder name; an empty one would write into the current folder, so it is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty --out would write into the current folder: name a folder, "
                                         "e.g. --out results/mine")
    return Path(text)


def _terminate(signum, frame) -> None:
    """SIGTERM (``kill``, a cluster's scheduler) stops a run as Ctrl-C does: finished work is kept."""
    raise Terminated()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, ``benchkit: warning: ...`` (no source line)."""
    print(f"benchkit: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    warnings.showwarning = _show_warning
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        pass
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str]) -> int:
    try:
        from benchkit.registry import Registry

        # plugins' subcommands are looked up only for a command that is not benchkit's own (and
        # for ``benchkit --help``, which lists them all)
        plugin_command = not argv or argv[0] not in BUILTIN_COMMANDS
        registry = Registry() if plugin_command else None
        args = build_parser(registry).parse_args(argv)
        args.argv = argv
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except UserError as exc:
        print(f"benchkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        print(f"benchkit: {'terminated' if isinstance(exc, Terminated) else 'interrupted'}; run the same command "
              "again to resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # `benchkit report ... | head`: the reader left; nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit flush does not fail again
        return 0
    except OSError as exc:
        if exc.errno not in SYSTEM_ERRNOS:
            return _internal_error(exc)
        where = f" {exc.filename}" if exc.filename else ""
        print(f"benchkit: error: cannot access{where} ({exc.strerror or exc}): check the space and permissions "
              "there; finished work is kept, and the same command resumes", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line for the user, the traceback in a file for the report
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    """A bug: one line for the user, the traceback in a file for the report (called while handling it)."""
    log = Path(tempfile.gettempdir()) / "benchkit-last-error.txt"
    try:
        log.write_text(traceback.format_exc())
        where = f"traceback in {log}"
    except OSError:
        where = "rerun with BENCHKIT_DEBUG=1 for the traceback"
    if os.environ.get("BENCHKIT_DEBUG"):
        raise
    print(f"benchkit: internal error: {type(exc).__name__}: {exc} ({where}; please report it)",
          file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
