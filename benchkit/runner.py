"""Cross methods x datasets x masks: plan and check everything, then run the unfinished cells.

Every check that can fail on the user's input (names, options, data, masks, output folder) runs
before anything is written, so a bad command leaves no partial output.
"""
from __future__ import annotations

import difflib
import hashlib
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
from benchkit.defaults import DEFAULT_DATASET, DEFAULT_METRICS, DEFAULT_N_IMAGES, DEFAULT_OUT, PAPER_MASKS
from benchkit.errors import UserError
from benchkit.interfaces import MethodContext
from benchkit.masking import make_masks
from benchkit.registry import Registry
from benchkit.results import CELLS, CellRecord, cell_path, read_cell, read_manifest, read_samples, write_manifest
from benchkit.tasks import CellTask, run_cell
from benchkit.validation import check_images


@dataclass
class RunConfig:
    """Settings of ``benchkit run``. ``methods=None`` means every available method."""

    methods: list[str] | None = None
    datasets: list[str] = field(default_factory=lambda: [DEFAULT_DATASET])
    masks: list[str] = field(default_factory=lambda: list(PAPER_MASKS))
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    n_images: int = DEFAULT_N_IMAGES
    seed: int = 0
    batch_size: int = 64
    device: str = "cpu"
    out: Path = Path(DEFAULT_OUT)
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
    ran: list[CellRecord] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    cells: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    previous_manifest: dict | None = None
    digests: dict[str, str] = field(default_factory=dict)  # content digest of each folder-like dataset

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.ran if not r.ok]


class InProcessExecutor:
    """Runs tasks one after another in this process (the default executor)."""

    def map(self, fn: Callable[[CellTask], dict], tasks: Iterable[CellTask]) -> Iterator[dict]:
        for task in tasks:
            yield fn(task)


DEVICE_TYPES = ("cpu", "cuda", "mps")


def _check_config(config: RunConfig) -> None:
    if config.n_images < 0 or config.batch_size < 1:
        raise UserError("--n-images must be >= 0 (0 = all) and --batch-size >= 1")
    if config.seed < 0 or config.seed >= 2**63:
        raise UserError(f"--seed {config.seed} is out of range: use a seed from 0 to 2**63 - 1")
    for label, names in (("--datasets", config.datasets), ("--masks", config.masks),
                         ("--metrics", config.metrics)):
        if not names:
            raise UserError(f"{label} is empty: name at least one")
    if config.methods is not None and not config.methods:
        raise UserError("--methods is empty: name at least one, or leave it out for all")
    try:
        device = torch.device(config.device)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"bad --device '{config.device}' ({exc}): use cpu or cuda") from exc
    check_device(device)


def check_device(device: torch.device) -> None:
    """Refuse devices that cannot run the benchmark here, with the fix."""
    if device.type not in DEVICE_TYPES:
        raise UserError(f"--device {device} cannot run methods: use cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU: use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: torch sees only {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps asked for, but torch sees no Apple GPU: use --device cpu")


def _check_option_names(config: RunConfig, registry: Registry, in_run: set[str], notes: list[str]) -> None:
    """Every ``-o PLUGIN.KEY`` must name a plugin; one that is installed but not in this run gets a note."""
    known = {info.name for info in registry.all()}
    for plugin, keys in config.options.items():
        if plugin in in_run:
            continue
        if plugin in known:
            notes.append(f"-o {plugin}.{next(iter(keys))}=... is not used: '{plugin}' is not in this run")
            continue
        close = difflib.get_close_matches(plugin, sorted(in_run | known), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"-o {plugin}.{next(iter(keys))}: there is no plugin '{plugin}': {hint}"
                        "see `benchkit list`")


def _options_for(config: RunConfig, spec: str) -> dict[str, str]:
    return dict(config.options.get(spec.partition(":")[0], {}))


def _prepare_out(config: RunConfig) -> dict | None:
    """Make sure the output folder can be written and holds a compatible run (or --force).

    Returns the previous manifest (None if there is none, or if --force replaces a corrupt one).
    """
    out = config.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{uuid.uuid4().hex}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to results folder {out} ({exc.strerror or exc}): "
                        "choose another --out") from exc
    try:
        manifest = read_manifest(out)
    except UserError:
        if not config.force:
            raise
        shutil.rmtree(out / CELLS, ignore_errors=True)  # --force replaces a corrupt run
        return None
    if manifest is None:
        if (out / CELLS).exists() and any((out / CELLS).iterdir()):
            if not config.force:
                raise UserError(f"{out} holds cells but no manifest.json: it is corrupt; "
                                "add --force to replace it, or choose another --out")
            shutil.rmtree(out / CELLS, ignore_errors=True)
        return None
    old = manifest.get("settings", {})
    new = {"seed": config.seed, "n_images": config.n_images}
    if old != new:
        if not config.force:
            raise UserError(f"{out} holds a run with {old}, not {new}: add --force to replace it, "
                            "or choose another --out")
        shutil.rmtree(out / CELLS, ignore_errors=True)
    return manifest


def _load_dataset(config: RunConfig, registry: Registry, spec: str):
    """(dataset, test images, options, content digest or None) of one ``--datasets`` entry."""
    options = _options_for(config, spec)
    if config.data_dir and registry.accepts("dataset", spec, "data_dir"):
        options["data_dir"] = config.data_dir
    dataset = registry.create("dataset", spec, options)
    images = dataset.images("test", limit=config.n_images or None)
    check_images(images, f"dataset '{spec}'")
    keys = dataset.image_keys("test", limit=config.n_images or None)
    if keys is not None and len(keys) != len(images):
        raise UserError(f"dataset '{spec}' gave {len(keys)} image keys for {len(images)} images: fix the plugin")
    digest = hashlib.sha256("".join(keys).encode()).hexdigest() if keys is not None else None
    return dataset, images, options, keys, digest


def _reusable(out_file: Path, settings: dict, key: tuple, notes: list[str]) -> bool:
    """Whether a finished cell can be kept as it is; says why not in ``notes`` where it matters."""
    record = read_cell(out_file)
    if not record.ok:
        return False
    old = record.settings
    if old.get("dataset_digest") != settings.get("dataset_digest"):
        notes.append(f"dataset '{key[0]}' changed since cell {'/'.join(key)} was run "
                     f"(digest {str(old.get('dataset_digest'))[:12]} -> {str(settings.get('dataset_digest'))[:12]}): "
                     "redoing it")
        return False
    if old != settings:
        return False
    if read_samples(out_file) is None:
        notes.append(f"cell {'/'.join(key)} lost its pictures ({out_file.with_suffix('.npz').name} is missing or "
                     "unreadable): redoing it")
        return False
    return True


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
    in_run = {s.partition(":")[0] for s in [*method_names, *config.masks, *config.metrics, *config.datasets]}
    _check_option_names(config, registry, in_run, outcome.notes)
    methods = {name: registry.create("method", name, _options_for(config, name)) for name in method_names}
    masks = {spec: registry.create("mask", spec, _options_for(config, spec)) for spec in config.masks}
    metrics = {name: registry.create("metric", name, _options_for(config, name)) for name in config.metrics}
    datasets = {}
    missing = []  # why each skipped dataset is not on disk
    for spec in config.datasets:
        try:
            datasets[spec] = _load_dataset(config, registry, spec)
        except UserError as exc:
            if not config.optional_datasets:
                raise
            missing.append(f"skipped dataset '{spec}': {exc}")
    if not datasets:
        raise UserError("no dataset to run: " + "; ".join(missing) + "; or name others with --datasets")
    outcome.notes += missing
    tasks = []
    cells_to_check = []
    for spec, (dataset, images, dataset_options, keys, digest) in datasets.items():
        n, channels, height, width = images.shape
        for metric_name, metric in metrics.items():
            if min(height, width) < metric.min_size:
                raise UserError(f"metric '{metric_name}' needs images of at least {metric.min_size}x{metric.min_size} "
                                f"pixels, but '{spec}' has {height}x{width}: use larger images (e.g. -o folder.size=64) "
                                f"or leave {metric_name} out of --metrics")
        image_ids = list(range(n))
        known_by_mask = {spec_m: make_masks(generator, spec, spec_m, image_ids, height, width, config.seed, keys)
                         for spec_m, generator in masks.items()}
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
            context = MethodContext(dataset=spec, device=torch.device(config.device),
                                    image_shape=(channels, height, width),
                                    checkpoint=Path(checkpoint) if checkpoint else None, seed=config.seed)
            method.check(context)  # cheap checks (e.g. the checkpoint fits the images), before any write
            if method.needs_train_data:
                check_images(dataset.images("train", limit=1), f"dataset '{spec}' (train split)")
            for mask_spec, known in known_by_mask.items():
                settings = {"n_images": n, "seed": config.seed, "metrics": config.metrics,
                            "method_options": _options_for(config, name),
                            "mask_options": _options_for(config, mask_spec),
                            "dataset_options": _options_for(config, spec), "checkpoint": checkpoint,
                            "dataset_digest": digest}
                out_file = cell_path(config.out, spec, mask_spec, name)
                cells_to_check.append((out_file, settings, (spec, mask_spec, name)))
                tasks.append(CellTask(dataset=spec, mask=mask_spec, method=name, images=images, known=known,
                                      image_ids=image_ids, metrics=list(config.metrics), out_file=str(out_file),
                                      settings=settings, method_options=_options_for(config, name),
                                      dataset_options=dataset_options, checkpoint=checkpoint,
                                      seed=config.seed, batch_size=config.batch_size, device=config.device))
    outcome.previous_manifest = _prepare_out(config)
    outcome.digests = {spec: entry[4] for spec, entry in datasets.items() if entry[4] is not None}
    todo = []
    outcome.cells = [key for _, _, key in cells_to_check]
    for task, (out_file, settings, key) in zip(tasks, cells_to_check):
        if not config.force and out_file.exists() and _reusable(out_file, settings, key, outcome.notes):
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
        "hardware": {"machine": platform.machine(), "processor": processor_name(),
                     "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "finished": None,
        "status": "running",
    }


def processor_name() -> str:
    """The CPU's model name (``platform.processor()`` is empty on Linux, so /proc/cpuinfo is read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(config: RunConfig, registry: Registry | None = None, executor=None,
        show_progress: bool = True) -> RunOutcome:
    """Plan, then run every unfinished cell; returns what ran, what was skipped, and notes."""
    registry = registry or Registry()
    tasks, outcome = plan(config, registry)
    manifest = _manifest(config, registry)
    manifest["dataset_digests"] = outcome.digests
    previous = outcome.previous_manifest
    if isinstance(previous, dict):  # a resumed run keeps the record of earlier attempts
        history = previous.pop("history", [])
        manifest["history"] = (history if isinstance(history, list) else []) + [previous]
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
    except BaseException as exc:  # never leave the manifest "running"
        manifest["status"] = "failed"
        manifest["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        bar.close()
        manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_manifest(config.out, manifest)
    return outcome
