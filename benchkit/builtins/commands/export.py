"""``benchkit export``: the exact inputs benchkit's own methods see, as files for a model that runs elsewhere.

For each dataset and mask it writes the ground truth, the mask and the masked input of every image
as lossless PNGs in one of the layouts of :mod:`benchkit.builtins.methods.exchange`, and a manifest with the
benchkit version, the dataset's identity and digest, the seed, the mask specs with their options,
the image ids and the SHA-256 of every file. The same command writes the same bytes. The files are
written into a temporary folder beside ``--out`` and renamed into place, so a half-written export is
never left; an existing non-empty ``--out`` is refused unless ``--force``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from benchkit import __version__
from benchkit.builtins.commands.run import out_folder
from benchkit.builtins.methods.exchange import (
    FORMAT,
    LAYOUTS,
    MANIFEST,
    manifest_digest,
    png_bytes,
    sha256,
    stem,
)
from benchkit.errors import UserError
from benchkit.files import cell_folder_name
from benchkit.imaging import to_uint8
from benchkit.plugin.hookspecs import hookimpl
from benchkit.run.defaults import DEFAULT_N_IMAGES, csv_list, parse_options
from benchkit.run.inputs import Inputs
from benchkit.run.plan import load_dataset
from benchkit.run.resolve import RunConfig, resolve_specs, with_defaults


@hookimpl(tryfirst=True)  # benchkit's own commands head `benchkit --help`
def register_commands(subparsers):
    export = subparsers.add_parser(
        "export", help="write the exact test inputs and masks as PNG files, for a model that runs elsewhere",
        description="Write, for each dataset and mask, the ground truth, the mask and the masked input of every "
        "image as PNG files, with a manifest; score the model's outputs with --methods predictions:DIR.")
    export.add_argument("--datasets", type=csv_list, action="extend", help="default: the default preset's")
    export.add_argument("--masks", type=csv_list, action="extend", help="default: the default preset's")
    export.add_argument("--n-images", type=int, default=DEFAULT_N_IMAGES, help="first N test images (0: all)")
    export.add_argument("--seed", type=int, default=0, help="seed of the masks (the run's --seed)")
    export.add_argument("--data-dir", help="folder searched first for dataset files")
    export.add_argument("-o", "--option", action="append", default=[], metavar="PLUGIN.KEY=VALUE")
    export.add_argument("--layout", choices=sorted(LAYOUTS), default="benchkit",
                        help="benchkit (gt/, known/, input/), lama (N.png beside N_mask000.png, 255 = hole) or "
                        "repaint (gt/, gt_keep_mask/ with 255 = known, gt_masked/)")
    export.add_argument("--out", type=out_folder, required=True, help="the export folder")
    export.add_argument("--force", action="store_true", help="replace an existing export folder")
    export.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    registry = args.registry
    config = with_defaults(RunConfig(methods=[], datasets=args.datasets, masks=args.masks, n_images=args.n_images,
                                     seed=args.seed, data_dir=args.data_dir, options=parse_options(args.option)),
                           registry)
    if config.n_images < 0 or not 0 <= config.seed < 2**63:
        raise UserError("--n-images must be >= 0 (0 = all) and --seed from 0 to 2**63 - 1")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise UserError(f"{out} exists and is not empty: choose another --out, or add --force to replace it")
    inputs = Inputs(registry)
    notes: list[str] = []
    assert config.datasets is not None and config.masks is not None  # with_defaults
    datasets = resolve_specs(config.datasets, "dataset", "--datasets", config, registry, notes)
    masks = resolve_specs(config.masks, "mask", "--masks", config, registry, notes)
    layout = LAYOUTS[args.layout]
    files: dict[str, bytes] = {}
    cells = []
    for dataset in (s.canonical for s in datasets):  # every check and every mask before the first write
        split = load_dataset(config, inputs, dataset)
        pixels = to_uint8(split.images)  # N x H x W x C
        for mask in (s.canonical for s in masks):
            known = inputs.masks(dataset, mask, config.seed, split, config.n_images)
            folder = cell_folder_name(dataset, mask)
            for i in range(len(pixels)):
                hole = ~known[i, 0].numpy()
                mask_image = ((~hole if layout.mask_value_known else hole).astype("uint8") * 255)[..., None]
                images = {"truth": pixels[i], "mask": mask_image, "masked": pixels[i] * (~hole)[..., None]}
                for role, name in layout.files(stem(i)).items():
                    files[f"{folder}/{name}"] = png_bytes(images[role])
            cells.append({"dataset": dataset, "dataset_digest": split.digest, "image_keys": split.keys,
                          "mask": mask, "folder": folder,
                          "image_ids": list(range(len(pixels))), "image_shape": list(split.images.shape[1:])})
    manifest = {"benchkit": __version__, "benchkit_format": FORMAT, "layout": layout.name, "seed": config.seed,
                "n_images": config.n_images, "cells": cells}
    manifest["digest"] = manifest_digest(manifest)
    manifest["files"] = {name: sha256(data) for name, data in sorted(files.items())}
    _write_all(out, files, json.dumps(manifest, indent=1, sort_keys=True) + "\n", args.force)
    for note in notes:
        print(f"note: {note}")
    count = sum(len(c["image_ids"]) for c in cells) // len(masks)
    print(f"exported {count} images x {len(masks)} masks in the {layout.name} layout to "
          f"{out} ({len(files)} files); predict them, copy {MANIFEST} beside the predictions, and score with "
          f"--methods predictions:DIR")
    return 0


def _write_all(out: Path, files: dict[str, bytes], manifest: str, force: bool) -> None:
    """Write every file into a temporary folder beside ``out``, then rename it into place."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for name, data in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (tmp / MANIFEST).write_text(manifest)
        if out.exists() and force:
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        elif out.exists():
            out.rmdir()  # empty (checked before): replaced by the rename
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
