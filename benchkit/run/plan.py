"""Plan a run: check everything that can be wrong with the user's input, resolve every spec, and cut
the cells into shard tasks, before anything is written (:func:`plan` writes nothing and starts nothing).

Every check that can fail on the user's input (names, options, data, masks, checkpoints, metrics,
executor) runs here, so a bad command leaves no partial output. The result is plain data: the
cells with their task keys and shards; the loaded splits, masks and set-up metrics stay in the
per-process cache of :mod:`benchkit.run.tasks`, where the shards of an in-process run find them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from benchkit import __version__
from benchkit.checkpoints import check_model_shape, find_checkpoint
from benchkit.errors import UserError
from benchkit.plugin.interfaces import MethodContext
from benchkit.plugin.registry import Registry
from benchkit.plugin.spec import Spec, unique
from benchkit.run.defaults import DEFAULT_N_IMAGES, DEFAULT_OUT, DEFAULT_PRESET, METRIC_BATCH_SIZE
from benchkit.run.evaluation import HOLE_BINS, metric_display
from benchkit.run.inputs import Inputs, LoadedSplit
from benchkit.run.taskkey import content_key, file_digest, file_digests
from benchkit.run.tasks import ShardTask, prepare_metrics, sample_positions
from benchkit.run.validation import check_images, check_option_names, parse_device
from benchkit.store.cells import (
    CellRecord,
    cell_path,
)


@dataclass
class RunConfig:
    """Settings of ``benchkit run``. ``methods=None`` means every available method; ``datasets``,
    ``masks`` and ``metrics`` left None are the ``default`` preset's.

    ``executor`` names an executor plugin (``inprocess``, ``processes``, ``dask``) and
    ``executor_options`` its options (``workers``, ``scheduler`` ...); ``shard_size`` is the number of
    images per shard (None: the executor's default, a whole cell in-process).
    """

    methods: list[str] | None = None
    datasets: list[str] | None = None
    masks: list[str] | None = None
    metrics: list[str] | None = None
    n_images: int = DEFAULT_N_IMAGES
    seed: int = 0
    batch_size: int | None = None  # images per method call; None: each method's preferred size (auto)
    device: str = "cpu"
    out: Path = Path(DEFAULT_OUT)
    force: bool = False  # redo this run's finished cells (others in the folder are kept)
    replace_folder: bool = False  # delete every cell of --out first (another run's too)
    data_dir: str | None = None
    models_dir: str | None = None
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    command: str = ""
    optional_datasets: bool = False  # skip (with a note) datasets that are not on disk, as presets do
    optional_methods: bool = False  # skip (with a note) methods that cannot run, as when methods is None
    executor: str = "inprocess"
    executor_options: dict = field(default_factory=dict)
    weights_dir: str | None = None  # pretrained weights of metrics (FID's Inception ...); else $BENCHKIT_WEIGHTS
    shard_size: int | None = None
    bins: str | None = None  # set metrics also per hole-area bin: "lama" (10 of 0.1) or "comodgan" (5 of 0.2)
    threads: int | None = None  # torch threads per worker; None: this process's cores divided among the workers


@dataclass
class CellPlan:
    """One cell of the run: its file, its reuse key, its shards and which are still to run."""

    key: tuple[str, str, str]  # canonical specs of (dataset, mask, method)
    out_file: Path
    record: CellRecord  # dataset, mask, method, settings (with the task key), metrics; rows filled when assembled
    shards: list[ShardTask] = field(default_factory=list)  # every shard of the cell, in image order
    todo: list[ShardTask] = field(default_factory=list)


@dataclass
class RunPlan:
    """What :func:`plan` found: every cell and shard still to run, as plain data, and the checked
    inputs (the splits, masks and set-up metrics, which the per-process cache keeps for the shards)."""

    out: Path
    cells: list[CellPlan] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # content digest of each folder-like dataset
    reused_shards: int = 0  # finished shards of unfinished cells, kept from an interrupted run
    rescore: list = field(default_factory=list)  # finished cells that only lack metrics: scored from their outputs
    executor: Spec | None = None  # resolved; created and started by :func:`run`
    threads: int = 1  # torch threads each shard runs with
    metrics: dict = field(default_factory=dict)  # dataset -> {metric spec: metric set up for it}
    splits: dict = field(default_factory=dict)  # dataset -> its LoadedSplit
    known: dict = field(default_factory=dict)  # (dataset, mask) -> the masks of the dataset's test images
    display: dict = field(default_factory=dict)  # what reports read from the folder: order of rows, metric attributes


    @property
    def keys(self) -> list[tuple[str, str, str]]:
        """(dataset, mask, method) of every cell of the run, in order."""
        return [cell.key for cell in self.cells]


def metric_batch_size(config: RunConfig) -> int:
    """Composites per metric call: ``--batch-size``, or 256 under auto."""
    return config.batch_size or METRIC_BATCH_SIZE


def with_defaults(config: RunConfig, registry: Registry) -> RunConfig:
    """``config`` with the datasets, masks and metrics it leaves None taken from the ``default`` preset."""
    default = registry.create("preset", DEFAULT_PRESET)
    return replace(config, datasets=list(default.datasets) if config.datasets is None else config.datasets,
                   masks=list(default.masks) if config.masks is None else config.masks,
                   metrics=list(default.metrics) if config.metrics is None else config.metrics)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container or ``taskset`` limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def worker_threads(threads: int | None, workers: int, notes: list[str]) -> int:
    """torch threads per worker: ``--threads``, or the available cores divided among the workers
    (at least one). A note when the workers' threads together exceed the cores: on a CPU that other
    jobs share, threads that wait for each other slow a run down many times."""
    cores = available_cores()
    chosen = threads or max(1, cores // workers)
    if workers * chosen > cores:
        notes.append(f"{workers} workers x {chosen} threads = {workers * chosen} threads on {cores} cores: they will "
                      "wait for each other; lower --threads (or --workers)")
    return chosen


def _check_config(config: RunConfig) -> None:
    if config.n_images < 0 or (config.batch_size is not None and config.batch_size < 1):
        raise UserError("--n-images must be >= 0 (0 = all) and --batch-size >= 1 (or auto)")
    if config.seed < 0 or config.seed >= 2**63:
        raise UserError(f"--seed {config.seed} is out of range: use a seed from 0 to 2**63 - 1")
    for label, names in (("--datasets", config.datasets), ("--masks", config.masks),
                         ("--metrics", config.metrics)):
        if not names:
            raise UserError(f"{label} is empty: name at least one")
    if config.methods is not None and not config.methods:
        raise UserError("--methods is empty: name at least one, or leave it out for all")
    if config.threads is not None and config.threads < 1:
        raise UserError(f"--threads {config.threads} must be at least 1 (or leave it out for the available cores)")
    if config.shard_size is not None and config.shard_size < 1:
        raise UserError(f"--shard-size {config.shard_size} must be at least 1")
    if config.bins and config.bins not in HOLE_BINS:
        raise UserError(f"--bins {config.bins} is not one of {', '.join(HOLE_BINS)}: choose one, or leave it out")
    parse_device(config.device)


def resolve_specs(texts: list[str], kind: str, flag: str, config: RunConfig, registry: Registry,
                  notes: list[str]) -> list[Spec]:
    """Parse and resolve the entries of one list flag; ``-o NAME.KEY=V`` fills what they leave unset,
    and entries that are the same spec after defaults are kept once (with a note)."""
    specs = [Spec.parse(text, kind) for text in texts]
    return unique([spec.resolve(registry, config.options.get(spec.name)) for spec in specs], flag, notes)


def load_dataset(config: RunConfig, inputs: Inputs, spec: str) -> LoadedSplit:
    """The checked test split of one dataset spec (kept by ``inputs`` for the run's shards)."""
    split = inputs.split(spec, config.data_dir, config.n_images)
    check_images(split.images, f"dataset '{spec}'")
    if split.keys is not None and len(split.keys) != len(split.images):
        raise UserError(f"dataset '{spec}' gave {len(split.keys)} image keys for {len(split.images)} images: "
                        "fix the plugin")
    return split


def plan(config: RunConfig, registry: Registry, inputs: Inputs | None = None) -> RunPlan:
    """Check the whole configuration and plan the shards still to run; writes nothing, starts nothing.
    What it loads (splits, masks, set-up metrics) stays in ``inputs`` (a new one if None) for the shards."""
    config = with_defaults(config, registry)
    _check_config(config)
    inputs = inputs or Inputs(registry)
    result = RunPlan(out=config.out)
    notes = result.notes
    lenient = config.methods is None or config.optional_methods
    every = [n for n in registry.names("method") if registry.get("method", n).cls.in_default_run]
    slow = [n for n in every if registry.get("method", n).cls.slow]
    if config.methods is None and slow:
        notes.append(f"left out as slow: {', '.join(slow)} (name them with --methods to run them)")
        every = [n for n in every if n not in slow]
    method_specs = resolve_specs(config.methods if config.methods is not None else every,
                                 "method", "--methods", config, registry, notes)
    for method_spec in list(method_specs):
        problem = registry.get("method", method_spec.name).cls.missing_requirement()
        if problem and not lenient:
            raise UserError(problem)
        if problem:
            notes.append(f"skipped: {problem}")
            method_specs.remove(method_spec)
    assert config.masks is not None and config.metrics is not None and config.datasets is not None  # with_defaults
    mask_specs = resolve_specs(config.masks, "mask", "--masks", config, registry, notes)
    metric_specs = resolve_specs(config.metrics, "metric", "--metrics", config, registry, notes)
    dataset_specs = resolve_specs(config.datasets, "dataset", "--datasets", config, registry, notes)
    executor_spec = Spec.parse(config.executor, "executor")
    given = {k: v for k, v in config.executor_options.items() if v is not None}
    for flag in given:
        if not registry.accepts("executor", executor_spec.name, flag):
            raise UserError(f"--{flag} does not apply to --executor {config.executor}: leave it out, or choose an "
                            "executor that takes it (`benchkit info dask`)")
    result.executor = executor_spec.resolve(registry, config.options.get(executor_spec.name, {}) | given)
    in_run = {s.name for s in [*method_specs, *mask_specs, *metric_specs, *dataset_specs, executor_spec]}
    check_option_names(config.options, registry, in_run, notes)
    labels = [s.label for s in method_specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UserError(f"--methods names two entries '{repeated[0]}': give each a distinct name=")
    methods = {s.label: registry.create("method", s) for s in method_specs}
    canonical = {s.label: s.canonical for s in method_specs}  # what a worker creates; the label names rows
    masks = {s.canonical: registry.create("mask", s) for s in mask_specs}
    mask_files = {name: file_digests(generator.input_files()) for name, generator in masks.items()}
    mask_keys = {name: content_key(files) if files else None for name, files in mask_files.items()}
    metric_names = [s.canonical for s in metric_specs]
    metrics = {name: registry.create("metric", name) for name in metric_names}
    datasets: dict[str, LoadedSplit] = {}
    missing = []  # why each skipped dataset is not on disk
    for spec in (s.canonical for s in dataset_specs):
        try:
            datasets[spec] = load_dataset(config, inputs, spec)
        except UserError as exc:
            if not config.optional_datasets:
                raise
            missing.append(f"skipped dataset '{spec}': {exc}")
    if not datasets:
        raise UserError("no dataset to run: " + "; ".join(missing) + "; or name others with --datasets")
    notes += missing
    notes += [f"--n-images {config.n_images} is more than the {len(split.images)} test images of '{spec}': "
              f"it runs on all {len(split.images)}" for spec, split in datasets.items()
              if config.n_images > len(split.images)]
    executor_class = registry.get("executor", executor_spec.name).cls  # created and started by run()
    shard_size = config.shard_size or executor_class.default_shard_size
    workers = 1 if executor_class.local else int(getattr(registry.create("executor", result.executor), "workers", 1))
    threads = result.threads = worker_threads(config.threads, workers, notes)
    for spec, split in datasets.items():
        dataset, digest = split.dataset, split.digest
        n, channels, height, width = split.images.shape
        for metric_name, metric in metrics.items():
            if min(height, width) < metric.min_size:
                side = metric.min_size
                raise UserError(f"metric '{metric_name}' needs images of at least {side}x{side} pixels, but "
                                f"'{spec}' has {height}x{width}: use larger images (e.g. -o folder.size=64) "
                                f"or leave {metric_name} out of --metrics")
        result.metrics[spec], metric_checkpoints = prepare_metrics(
            inputs, metric_names, spec, split, config.device, config.models_dir,
            config.weights_dir, config.seed)  # labels, checkpoints, weights: checked before any write
        result.splits[spec] = split
        for mask_spec, generator in masks.items():  # every mask is made and checked here, before any write
            result.known[(spec, mask_spec)] = inputs.masks(spec, mask_spec, config.seed, split, config.n_images,
                                                           files=mask_keys[mask_spec], generator=generator)
        kept = sample_positions(n, config.seed, digest or spec)
        ranges = [(start, min(start + (shard_size or n), n)) for start in range(0, n, shard_size or n)]
        for name, method in methods.items():
            checkpoint = None
            if method.needs_checkpoint:
                try:
                    checkpoint = str(find_checkpoint(method.needs_checkpoint, spec, config.models_dir,
                                                     method.checkpoint_dirs, dataset.models_from))
                except UserError as exc:
                    if not lenient:
                        raise
                    notes.append(f"skipped method '{name}' on '{spec}': {exc}")
                    continue
            context = MethodContext(dataset=spec, device=torch.device(config.device),
                                    image_shape=(channels, height, width),
                                    checkpoint=Path(checkpoint) if checkpoint else None, seed=config.seed,
                                    masks=tuple(masks), image_ids=tuple(range(n)), dataset_digest=digest,
                                    image_keys=tuple(split.keys) if split.keys is not None else None)
            if checkpoint is not None:
                check_model_shape(Path(checkpoint), (channels, height, width))  # from its JSON, before any write
            method.check(context)  # the method's own cheap checks
            if method.needs_train_data:
                try:
                    dataset.check_files("train")  # every file a worker will read, cheaply (headers)
                    check_images(dataset.images("train", limit=1), f"dataset '{spec}' (train split)")
                except UserError as exc:
                    if not lenient:
                        raise
                    notes.append(f"skipped method '{name}' on '{spec}': {exc}")
                    continue
            batch = config.batch_size or method.preferred_batch_size(torch.device(config.device),
                                                                     (channels, height, width))
            for mask_spec in masks:
                files = mask_files[mask_spec] | file_digests(method.input_files(context, mask_spec))
                identity: dict[str, Any] = {
                    "dataset": spec, "mask": mask_spec, "method": canonical[name], "seed": config.seed, "n_images": n,
                    "dataset_digest": digest, "checkpoint_sha256": file_digest(checkpoint), "benchkit": __version__,
                    "versions": {kind: _distribution_version(registry, kind, s) for kind, s in
                                 (("dataset", spec), ("mask", mask_spec), ("method", canonical[name]))}}
                if config.bins:  # the set metrics' states are kept per bin
                    identity["bins"] = config.bins
                if files:  # predictions, mask images: a changed file redoes the cells that read it
                    identity["input_files"] = files
                settings = {"n_images": n, "seed": config.seed, "metrics": sorted(metric_names),
                            "checkpoint": checkpoint, "dataset_digest": digest, "benchkit": __version__,
                            "method_version": identity["versions"]["method"], "task_key": content_key(identity),
                            "input_files": files}
                record = CellRecord(spec, mask_spec, name, "ok", settings=settings, metrics=list(metric_names),
                                    bins=config.bins)
                cell = CellPlan((spec, mask_spec, name), cell_path(config.out, spec, mask_spec, name), record)
                cell.shards = [ShardTask(dataset=spec, mask=mask_spec, method=canonical[name],
                                         image_ids=tuple(range(a, b)),
                                         n_images=config.n_images, metrics=tuple(metric_names), seed=config.seed,
                                         key=content_key(identity | {"image_ids": [a, b], "metrics": metric_names}),
                                         data_dir=config.data_dir, checkpoint=checkpoint, batch_size=batch,
                                         device=config.device, sample_ids=tuple(i for i in kept if a <= i < b),
                                         digest=digest, block_external=registry.block_external, threads=threads,
                                         metric_checkpoints=metric_checkpoints, weights_dir=config.weights_dir,
                                         bins=config.bins, mask_files=mask_keys[mask_spec])
                               for a, b in ranges]
                cell.todo = list(cell.shards)
                result.cells.append(cell)
    result.digests = {spec: split.digest for spec, split in datasets.items() if split.digest is not None}
    result.display = {"datasets": list(datasets), "masks": list(masks), "methods": list(methods),
                      "metrics": {name: metric_display(metric) for name, metric in metrics.items()}}
    return result


def _distribution_version(registry: Registry, kind: str, spec: str) -> str | None:
    """Version of the distribution a plugin comes from (its results change with it)."""
    import importlib.metadata

    dist = registry.get(kind, Spec.parse(spec, kind).name).distribution
    if dist == "benchkit":
        return __version__
    try:
        return importlib.metadata.version(dist)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


