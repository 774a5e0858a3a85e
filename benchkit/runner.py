"""Cross methods x datasets x masks: plan and check everything, then run the unfinished cells.

Every check that can fail on the user's input (names, options, data, masks, output folder) runs
before anything is written, so a bad command leaves no partial output.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from tqdm import tqdm

from benchkit import __version__
from benchkit.checkpoints import find_checkpoint
from benchkit.errors import UserError
from benchkit.masking import make_masks
from benchkit.registry import Registry
from benchkit.results import CELLS, cell_path, read_cell, read_manifest, write_manifest
from benchkit.tasks import CellTask, run_cell
from benchkit.validation import check_images, check_known


@dataclass
class RunConfig:
    """Settings of ``benchkit run``. ``methods=None`` means every available method."""

    methods: list[str] | None = None
    datasets: list[str] = field(default_factory=lambda: ["fashion-mnist-mini"])
    masks: list[str] = field(default_factory=lambda: ["center", "pattern", "random", "half"])
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim", "l1", "psnr_hole"])
    n_images: int = 16
    seed: int = 0
    batch_size: int = 64
    device: str = "cpu"
    out: Path = Path("results/default")
    force: bool = False
    data_dir: str | None = None
    models_dir: str | None = None
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    command: str = ""
    optional_datasets: bool = False  # skip (with a note) datasets that are not on disk, as presets do
    optional_methods: bool = False  # skip (with a note) methods that cannot run, as when methods is None


@dataclass
class RunOutcome:
    out: Path
    ran: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    cells: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.ran if r["status"] != "ok"]


class InProcessExecutor:
    """Runs tasks one after another in this process (the default executor)."""

    def map(self, fn: Callable[[CellTask], dict], tasks: Iterable[CellTask]) -> Iterator[dict]:
        for task in tasks:
            yield fn(task)


def _check_config(config: RunConfig) -> None:
    if config.n_images < 0 or config.batch_size < 1:
        raise UserError("--n-images must be >= 0 (0 = all) and --batch-size >= 1")
    for label, names in (("--datasets", config.datasets), ("--masks", config.masks),
                         ("--metrics", config.metrics)):
        if not names:
            raise UserError(f"{label} is empty: name at least one")
    if config.methods is not None and not config.methods:
        raise UserError("--methods is empty: name at least one, or leave it out for all")
    try:
        device = torch.device(config.device)
    except RuntimeError as exc:
        raise UserError(f"bad --device '{config.device}' ({exc}): use cpu or cuda") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU: use --device cpu")


def _options_for(config: RunConfig, spec: str) -> dict[str, str]:
    return dict(config.options.get(spec.partition(":")[0], {}))


def _prepare_out(config: RunConfig) -> None:
    """Make sure the output folder can be written and holds a compatible run (or --force)."""
    out = config.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{uuid.uuid4().hex}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to results folder {out} ({exc.strerror or exc}): "
                        "choose another --out") from exc
    manifest = read_manifest(out)
    if manifest is None:
        if (out / CELLS).exists():
            raise UserError(f"{out} holds cells but no manifest.json: it is corrupt; "
                            "delete it or choose another --out")
        return
    old = manifest.get("settings", {})
    new = {"seed": config.seed, "n_images": config.n_images}
    if old != new:
        if not config.force:
            raise UserError(f"{out} holds a run with {old}, not {new}: add --force to replace it, "
                            "or choose another --out")
        shutil.rmtree(out / CELLS, ignore_errors=True)


def plan(config: RunConfig, registry: Registry) -> tuple[list[CellTask], RunOutcome]:
    """Check the whole configuration and build the tasks of the cells still to run."""
    _check_config(config)
    outcome = RunOutcome(out=config.out)
    method_names = config.methods if config.methods is not None else registry.names("method")
    lenient = config.methods is None or config.optional_methods
    for name in list(method_names):
        problem = registry.get("method", name).cls.missing_requirement()
        if problem and not lenient:
            raise UserError(problem)
        if problem:
            outcome.notes.append(f"skipped: {problem}")
            method_names = [m for m in method_names if m != name]
    methods = {name: registry.create("method", name, _options_for(config, name)) for name in method_names}
    masks = {spec: registry.create("mask", spec, _options_for(config, spec)) for spec in config.masks}
    for metric in config.metrics:
        registry.create("metric", metric, _options_for(config, metric))
    datasets = {}
    missing = []  # why each skipped dataset is not on disk
    for spec in config.datasets:
        options = _options_for(config, spec) | ({"data_dir": config.data_dir} if config.data_dir else {})
        dataset = registry.create("dataset", spec, options)
        try:
            images = dataset.images("test", limit=config.n_images or None)
        except UserError as exc:
            if not config.optional_datasets:
                raise
            missing.append(f"skipped dataset '{spec}': {exc}")
            continue
        check_images(images, f"dataset '{spec}'")
        datasets[spec] = (dataset, images, options)
    if not datasets:
        raise UserError("no dataset to run: " + "; ".join(missing) + "; or name others with --datasets")
    outcome.notes += missing
    tasks = []
    cells_to_check = []
    for spec, (dataset, images, dataset_options) in datasets.items():
        n, _, height, width = images.shape
        image_ids = list(range(n))
        known_by_mask = {}
        for mask_spec, generator in masks.items():
            known = make_masks(generator, spec, mask_spec, image_ids, height, width, config.seed)
            check_known(known, images, f"mask '{mask_spec}' on dataset '{spec}'")
            known_by_mask[mask_spec] = known
        for name, method in methods.items():
            checkpoint = None
            if method.needs_checkpoint:
                try:
                    checkpoint = str(find_checkpoint(method.needs_checkpoint, spec, config.models_dir,
                                                     method.checkpoint_dirs, dataset.models_from))
                except UserError as exc:
                    if not lenient:
                        raise
                    outcome.notes.append(f"skipped method '{name}' on '{spec}': {exc}")
                    continue
            if method.needs_train_data:
                check_images(dataset.images("train", limit=1), f"dataset '{spec}' (train split)")
            for mask_spec, known in known_by_mask.items():
                settings = {"n_images": n, "seed": config.seed, "metrics": config.metrics,
                            "method_options": _options_for(config, name),
                            "mask_options": _options_for(config, mask_spec),
                            "dataset_options": _options_for(config, spec), "checkpoint": checkpoint}
                out_file = cell_path(config.out, spec, mask_spec, name)
                cells_to_check.append((out_file, settings, (spec, mask_spec, name)))
                tasks.append(CellTask(dataset=spec, mask=mask_spec, method=name, images=images, known=known,
                                      image_ids=image_ids, metrics=list(config.metrics), out_file=str(out_file),
                                      settings=settings, method_options=_options_for(config, name),
                                      dataset_options=dataset_options, checkpoint=checkpoint,
                                      seed=config.seed, batch_size=config.batch_size, device=config.device))
    _prepare_out(config)
    todo = []
    outcome.cells = [key for _, _, key in cells_to_check]
    for task, (out_file, settings, key) in zip(tasks, cells_to_check):
        if not config.force and out_file.exists():
            record = read_cell(out_file)
            if record["status"] == "ok" and record.get("settings") == settings:
                outcome.skipped.append(key)
                continue
        todo.append(task)
    return todo, outcome


def _manifest(config: RunConfig, registry: Registry) -> dict:
    import numpy, pandas, scipy  # noqa: E401  (versions only)

    return {
        "command": config.command or " ".join(sys.argv),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "settings": {"seed": config.seed, "n_images": config.n_images},
        "versions": {"benchkit": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": numpy.__version__, "scipy": scipy.__version__, "pandas": pandas.__version__},
        "plugins": {p.name: p.distribution for p in registry.all()},
        "hardware": {"machine": platform.machine(), "processor": platform.processor(),
                     "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "finished": None,
        "status": "running",
    }


def run(config: RunConfig, registry: Registry | None = None, executor=None,
        show_progress: bool = True) -> RunOutcome:
    """Plan, then run every unfinished cell; returns what ran, what was skipped, and notes."""
    registry = registry or Registry()
    tasks, outcome = plan(config, registry)
    manifest = _manifest(config, registry)
    previous = read_manifest(config.out)
    if previous:  # a resumed run keeps the record of earlier attempts
        manifest["history"] = previous.pop("history", []) + [previous]
    write_manifest(config.out, manifest)
    total = sum(len(t.image_ids) for t in tasks)
    bar = tqdm(total=total, unit="img", disable=not show_progress or total == 0, dynamic_ncols=True)
    executor = executor or InProcessExecutor()

    def run_one(task: CellTask) -> dict:
        bar.set_description(f"{task.dataset}/{task.mask}/{task.method}")
        return run_cell(task, registry=registry, progress=bar.update)

    try:
        for record in executor.map(run_one, tasks):
            outcome.ran.append(record)
        manifest["status"] = "finished"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    finally:
        bar.close()
        manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_manifest(config.out, manifest)
    return outcome
