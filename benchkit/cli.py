"""The ``benchkit`` command line: run, list, report, data, train."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from benchkit.errors import UserError
from benchkit.presets import PRESETS

PAPER_MASKS = "center,pattern,random,half"
DEFAULT_DATASET = "fashion-mnist-mini"
DEFAULT_N_IMAGES = 16


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _options(pairs: list[str]) -> dict[str, dict[str, str]]:
    """Parse ``-o PLUGIN.KEY=VALUE`` pairs into ``{PLUGIN: {KEY: VALUE}}``."""
    options: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        plugin, dot, option = key.partition(".")
        if not sep or not dot or not plugin or not option:
            raise UserError(f"option '{pair}' is not PLUGIN.KEY=VALUE (for example gan.iterations=100)")
        options.setdefault(plugin, {})[option] = value
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="inpaint test images: methods x datasets x masks, then print tables",
                         description="Run methods x datasets x masks and print PSNR/SSIM tables. With no "
                         f"flags: every available method, dataset {DEFAULT_DATASET}, masks {PAPER_MASKS}, "
                         f"the first {DEFAULT_N_IMAGES} test images: about 3 minutes on 2 CPU cores, most of "
                         "it gan's 1500 latent-search iterations (about 2 s per image). "
                         "Rerunning the same command resumes and skips finished cells.")
    run.add_argument("--preset", choices=sorted(PRESETS),
                     help="a paper's setting: yeh2017 = Table 1 (datasets celeba,svhn,cars; the four masks; "
                     "methods ce,gan); --datasets, --masks and --methods override its choices, datasets "
                     "not on disk are skipped with a note, and the paper's table is printed beside ours")
    run.add_argument("--methods", type=_csv, help="comma-separated methods (default: all available)")
    run.add_argument("--masks", type=_csv, help=f"default: {PAPER_MASKS}")
    run.add_argument("--datasets", type=_csv, help=f"default: {DEFAULT_DATASET}")
    run.add_argument("--metrics", type=_csv, default=_csv("psnr,ssim,l1,psnr_hole"),
                     help="default: psnr,ssim,l1,psnr_hole")
    run.add_argument("--n-images", type=int, default=DEFAULT_N_IMAGES,
                     help=f"first N test images of each dataset (default {DEFAULT_N_IMAGES}: about 3 minutes "
                     "for every method on 2 CPU cores; 0 means all)")
    run.add_argument("--seed", type=int, default=0, help="seed of masks and methods (default 0)")
    run.add_argument("--batch-size", type=int, default=64, help="images per method call (default 64)")
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    run.add_argument("--out", type=Path, default=Path("results/default"),
                     help="run folder (default results/default)")
    run.add_argument("--force", action="store_true", help="redo cells that are already finished")
    run.add_argument("--data-dir", help="folder searched first for dataset files")
    run.add_argument("--models-dir", type=Path, help="folder searched first for trained checkpoints")
    run.add_argument("-o", "--option", action="append", default=[], metavar="PLUGIN.KEY=VALUE",
                     help="plugin option, e.g. -o gan.iterations=300 (repeatable)")
    run.add_argument("--format", default="github", choices=["github", "latex", "csv"])
    run.add_argument("--grid-errors", action="store_true",
                     help="add error images |x - x_hat| x 2 to the comparison grids (as in the paper's Fig. 12)")

    sub.add_parser("list", help="show every plugin (and preset): kind, name, description, distribution")

    report = sub.add_parser("report", help="print summary tables of a run folder")
    report.add_argument("path", type=Path)
    report.add_argument("--format", default="github", choices=["github", "latex", "csv"])
    report.add_argument("--html", nargs="?", const="", metavar="FILE",
                        help="write one self-contained HTML report (default FILE: PATH/report.html)")
    report.add_argument("--errors", action="store_true", help="HTML: add error images |x - x_hat| x 2 to the grids")

    data = sub.add_parser("data", help="dataset files")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    download = data_sub.add_parser("download", help="download a dataset's files (needs the internet)")
    download.add_argument("dataset")
    download.add_argument("--data-dir", type=Path, help="destination root (default $BENCHKIT_DATA or ./data)")

    train = sub.add_parser("train", help="train a model for a dataset")
    train.add_argument("model", choices=["gan", "ce"])
    train.add_argument("--dataset", required=True)
    train.add_argument("--data-dir")
    train.add_argument("--epochs", type=int, default=25)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--device", default="cpu")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, default=Path("models"), help="output folder (default ./models)")
    train.add_argument("--max-minutes", type=float, help="stop after this long; rerun to resume")
    train.add_argument("--masks", type=_csv, default=_csv(PAPER_MASKS),
                       help=f"ce only: training masks (default {PAPER_MASKS})")
    train.add_argument("--overlap", type=int, default=0,
                       help="ce only: weight 10x a band of this many known pixels around the hole (default 0)")
    return parser


def cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from benchkit.nets.context_encoder import train_ce
    from benchkit.nets.training import TrainConfig, train_gan
    from benchkit.registry import Registry

    from benchkit.runner import check_device

    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs and --batch-size must be at least 1")
    if args.seed < 0 or args.overlap < 0 or (args.max_minutes is not None and not args.max_minutes > 0):
        raise UserError("--seed and --overlap must be >= 0, and --max-minutes > 0")
    try:
        check_device(torch.device(args.device))
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"bad --device '{args.device}' ({exc}): use cpu or cuda") from exc
    registry = Registry()
    dataset = registry.create("dataset", args.dataset, {"data_dir": args.data_dir} if args.data_dir else {})
    masks = {name: registry.create("mask", name) for name in args.masks} if args.model == "ce" else {}
    images = dataset.images_uint8("train")  # converted to float one batch at a time
    if len(images) < args.batch_size:
        raise UserError(f"dataset '{args.dataset}' has {len(images)} training images, fewer than --batch-size "
                        f"{args.batch_size}: no batch could be trained; lower --batch-size or add images")
    if images.shape[2] != images.shape[3] or images.shape[2] not in (32, 64, 128):
        raise UserError(f"dataset '{args.dataset}' has {images.shape[2]}x{images.shape[3]} images: the DCGAN "
                        "networks take 32, 64 or 128 px squares: resize the images")
    config = TrainConfig(dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
                         seed=args.seed, device=args.device, max_minutes=args.max_minutes)
    command = "benchkit " + shlex.join(argv)
    if args.model == "ce":
        path = train_ce(images, masks, config, args.out, command, overlap=args.overlap)
    else:
        path = train_gan(images, config, args.out, command)
    print(f"model written to {path}")
    return 0


def cmd_list(args: argparse.Namespace, argv: list[str]) -> int:
    from tabulate import tabulate

    from benchkit.registry import Registry

    rows = [(p.kind, p.name, p.description, p.distribution) for p in Registry().all()]
    rows += [("preset", p.name, p.description + " (benchkit run --preset " + p.name + ")", "benchkit")
             for p in PRESETS.values()]
    print(tabulate(rows, headers=["kind", "name", "description", "distribution"]))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, ``benchkit: warning: ...`` (no source line)."""
    print(f"benchkit: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    warnings.showwarning = _show_warning
    args = build_parser().parse_args(argv)
    handler = {"train": cmd_train, "list": cmd_list}.get(args.command)
    if handler is None:
        from benchkit import commands

        handler = getattr(commands, f"cmd_{args.command}")
    try:
        code = handler(args, argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except UserError as exc:
        print(f"benchkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("benchkit: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `benchkit report ... | head`: the reader left; nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit flush does not fail again
        return 0
    except Exception as exc:  # a bug: one line for the user, the traceback in a file for the report
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
