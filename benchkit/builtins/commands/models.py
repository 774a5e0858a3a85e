"""``benchkit train NAME`` (a model for a dataset, resumable) and ``benchkit data download``."""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.spec import Spec
from benchkit.run.defaults import DEFAULT_PRESET, csv_list, parse_options


@hookimpl(tryfirst=True)  # benchkit's own commands head `benchkit --help`
def register_commands(subparsers):
    data = subparsers.add_parser("data", help="dataset files")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    download = data_sub.add_parser("download", help="download a dataset's files (needs the internet)")
    download.add_argument("dataset")
    download.add_argument("--data-dir", type=Path, help="destination root (default $BENCHKIT_DATA or ./data)")
    download.set_defaults(handler=cmd_data)

    train = subparsers.add_parser("train", help="train a model for a dataset (`benchkit list` shows the trainers)")
    train.add_argument("model", help="trainer name, e.g. gan or ce")
    train.add_argument("--dataset", required=True)
    train.add_argument("--data-dir")
    train.add_argument("--epochs", type=int, default=25)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--device", default="cpu")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, default=Path("models"), help="output folder (default ./models)")
    train.add_argument("--max-minutes", type=float, help="stop after this long; rerun to resume")
    train.add_argument("--masks", type=csv_list,
                       help="trainers that use masks (ce): training masks (default: the default preset's masks)")
    train.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                       help="trainer option, e.g. -o width=128 or -o overlap=4 (see `benchkit info NAME`)")
    train.set_defaults(handler=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from benchkit.plugin.interfaces import TrainConfig
    from benchkit.run.validation import parse_device

    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs and --batch-size must be at least 1")
    if args.seed < 0 or (args.max_minutes is not None and not args.max_minutes > 0):
        raise UserError("--seed must be >= 0, and --max-minutes > 0")
    parse_device(args.device)
    registry = args.registry
    mask_names = args.masks if args.masks is not None else list(registry.create("preset", DEFAULT_PRESET).masks)
    options = parse_options(args.option, prefix_required=False)
    dataset_name = Spec.parse(args.dataset, "dataset").name
    unknown = set(options) - {"", args.model, dataset_name, *(Spec.parse(m, "mask").name for m in mask_names)}
    if unknown:
        raise UserError(f"-o {sorted(unknown)[0]}.*: `benchkit train {args.model}` takes trainer options as "
                        f"-o KEY=VALUE, and -o {dataset_name}.KEY=VALUE for the dataset")
    problem = registry.get("trainer", Spec.parse(args.model, "trainer").name).cls.missing_requirement()
    if problem:
        raise UserError(f"trainer {problem}")
    trainer = registry.create("trainer", args.model, options.get("", {}) | options.get(args.model, {}))
    dataset = registry.create("dataset", args.dataset, options.get(dataset_name, {}) | (
        {"data_dir": args.data_dir} if args.data_dir and registry.accepts("dataset", args.dataset, "data_dir") else {}))
    masks = ({name: registry.create("mask", name, options.get(Spec.parse(name, "mask").name, {}))
              for name in mask_names} if trainer.needs_masks else {})
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


def cmd_data(args: argparse.Namespace) -> int:
    root = args.data_dir or Path(os.environ.get("BENCHKIT_DATA", "data"))
    dataset = args.registry.create("dataset", args.dataset)
    folder = dataset.download(root / args.dataset)
    print(f"{args.dataset} downloaded to {folder}; use --data-dir {root} or BENCHKIT_DATA={root}")
    return 0
