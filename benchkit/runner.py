"""Cross methods x datasets x masks: plan and check everything, then run the unfinished shards.

Every check that can fail on the user's input (names, options, data, masks, checkpoints, metrics,
output folder, executor) runs in :func:`plan`, before anything is written, so a bad command leaves
no partial output. Cells are cut into shards of ``shard_size`` images; an executor runs the shards
(here, in a process pool, or on a Dask cluster) and this process alone writes each shard's file as
its result arrives, then assembles the cell when its last shard is in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from benchkit import __version__
from benchkit.checkpoints import find_checkpoint
from benchkit.defaults import (DEFAULT_DATASET, DEFAULT_METRICS, DEFAULT_N_IMAGES, DEFAULT_OUT, METRIC_BATCH_SIZE,
                               PAPER_MASKS)
from benchkit.errors import UserError, WriteError
from benchkit.interfaces import MethodContext
from benchkit.registry import Registry
from benchkit.evaluation import ALL, compute_sets
from benchkit.results import (CellRecord, assemble_cell, cell_path, read_cell, read_samples, shard_path, state_arrays,
                              write_cell, write_manifest)
from benchkit.reuse import reusable, shard_done
from benchkit.runfolder import build_manifest, prepare_out
from benchkit.scoring import score_cell
from benchkit.spec import Spec, unique
from benchkit.taskkey import content_key, file_digest
from benchkit.tasks import (LoadedSplit, ShardTask, clear_cache, load_test_split, prepare_metrics, run_shard,
                            sample_positions, split_masks)
from benchkit.validation import check_images, check_option_names, parse_device


@dataclass
class RunConfig:
    """Settings of ``benchkit run``. ``methods=None`` means every available method.

    ``executor`` names an executor plugin (``inprocess``, ``processes``, ``dask``) and
    ``executor_options`` its options (``workers``, ``scheduler`` ...); ``shard_size`` is the number of
    images per shard (None: the executor's default, a whole cell in-process).
    """

    methods: list[str] | None = None
    datasets: list[str] = field(default_factory=lambda: [DEFAULT_DATASET])
    masks: list[str] = field(default_factory=lambda: list(PAPER_MASKS))
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    n_images: int = DEFAULT_N_IMAGES
    seed: int = 0
    batch_size: int | None = None  # images per method call; None: each method's preferred size (auto)
    device: str = "cpu"
    out: Path = Path(DEFAULT_OUT)
    force: bool = False
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
    metrics: dict = field(default_factory=dict)  # dataset -> {metric spec: metric set up for it}
    splits: dict = field(default_factory=dict)  # dataset -> its LoadedSplit
    known: dict = field(default_factory=dict)  # (dataset, mask) -> the masks of the dataset's test images


    @property
    def keys(self) -> list[tuple[str, str, str]]:
        """(dataset, mask, method) of every cell of the run, in order."""
        return [cell.key for cell in self.cells]


@dataclass
class RunOutcome(RunPlan):
    """What :func:`run` did: its plan, and the cells that ran."""

    ran: list[CellRecord] = field(default_factory=list)

    @property
    def failed(self) -> list[CellRecord]:
        """Cells whose method failed, or where a metric failed (that column only)."""
        return [r for r in self.ran if not r.ok or r.metric_errors]


def metric_batch_size(config: RunConfig) -> int:
    """Composites per metric call: ``--batch-size``, or 256 under auto."""
    return config.batch_size or METRIC_BATCH_SIZE


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
    if config.shard_size is not None and config.shard_size < 1:
        raise UserError(f"--shard-size {config.shard_size} must be at least 1")
    parse_device(config.device)


def resolve_specs(texts: list[str], kind: str, flag: str, config: RunConfig, registry: Registry,
                  notes: list[str]) -> list[Spec]:
    """Parse and resolve the entries of one list flag; ``-o NAME.KEY=V`` fills what they leave unset,
    and entries that are the same spec after defaults are kept once (with a note)."""
    specs = [Spec.parse(text, kind) for text in texts]
    return unique([spec.resolve(registry, config.options.get(spec.name)) for spec in specs], flag, notes)


def _load_dataset(config: RunConfig, registry: Registry, spec: str) -> LoadedSplit:
    """The checked test split of one dataset spec (cached for the run's shards)."""
    split = load_test_split(registry, spec, config.data_dir, config.n_images)
    check_images(split.images, f"dataset '{spec}'")
    if split.keys is not None and len(split.keys) != len(split.images):
        raise UserError(f"dataset '{spec}' gave {len(split.keys)} image keys for {len(split.images)} images: "
                        "fix the plugin")
    return split


def plan(config: RunConfig, registry: Registry) -> RunPlan:
    """Check the whole configuration and plan the shards still to run; writes nothing, starts nothing."""
    _check_config(config)
    clear_cache()  # datasets and setups of an earlier run in this process may be stale
    result = RunPlan(out=config.out)
    notes = result.notes
    lenient = config.methods is None or config.optional_methods
    method_specs = resolve_specs(config.methods if config.methods is not None else registry.names("method"),
                                 "method", "--methods", config, registry, notes)
    for spec in list(method_specs):
        problem = registry.get("method", spec.name).cls.missing_requirement()
        if problem and not lenient:
            raise UserError(problem)
        if problem:
            notes.append(f"skipped: {problem}")
            method_specs.remove(spec)
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
    methods = {s.canonical: registry.create("method", s) for s in method_specs}
    masks = {s.canonical: registry.create("mask", s) for s in mask_specs}
    metric_names = [s.canonical for s in metric_specs]
    metrics = {name: registry.create("metric", name) for name in metric_names}
    datasets = {}
    missing = []  # why each skipped dataset is not on disk
    for spec in (s.canonical for s in dataset_specs):
        try:
            datasets[spec] = _load_dataset(config, registry, spec)
        except UserError as exc:
            if not config.optional_datasets:
                raise
            missing.append(f"skipped dataset '{spec}': {exc}")
    if not datasets:
        raise UserError("no dataset to run: " + "; ".join(missing) + "; or name others with --datasets")
    notes += missing
    shard_size = config.shard_size or registry.get("executor", executor_spec.name).cls.default_shard_size
    threads = registry.create("executor", result.executor).threads
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
            registry, metric_names, spec, split, config.device, config.models_dir,
            config.weights_dir, config.seed)  # labels, checkpoints, weights: checked before any write
        result.splits[spec] = split
        for mask_spec, generator in masks.items():  # every mask is made and checked here, before any write
            result.known[(spec, mask_spec)] = split_masks(generator, spec, mask_spec, config.seed, split,
                                                          config.n_images)
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
                                    checkpoint=Path(checkpoint) if checkpoint else None, seed=config.seed)
            method.check(context)  # cheap checks (e.g. the checkpoint fits the images), before any write
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
                identity = {"dataset": spec, "mask": mask_spec, "method": name, "seed": config.seed, "n_images": n,
                            "dataset_digest": digest, "checkpoint_sha256": file_digest(checkpoint),
                            "benchkit": __version__,
                            "versions": {kind: _distribution_version(registry, kind, s) for kind, s in
                                         (("dataset", spec), ("mask", mask_spec), ("method", name))}}
                settings = {"n_images": n, "seed": config.seed, "metrics": sorted(metric_names),
                            "checkpoint": checkpoint, "dataset_digest": digest, "benchkit": __version__,
                            "method_version": identity["versions"]["method"], "task_key": content_key(identity)}
                record = CellRecord(spec, mask_spec, name, "ok", settings=settings, metrics=list(metric_names))
                cell = CellPlan((spec, mask_spec, name), cell_path(config.out, spec, mask_spec, name), record)
                cell.shards = [ShardTask(dataset=spec, mask=mask_spec, method=name, image_ids=tuple(range(a, b)),
                                         n_images=config.n_images, metrics=tuple(metric_names), seed=config.seed,
                                         key=content_key(identity | {"image_ids": [a, b], "metrics": metric_names}),
                                         data_dir=config.data_dir, checkpoint=checkpoint, batch_size=batch,
                                         device=config.device, sample_ids=tuple(i for i in kept if a <= i < b),
                                         digest=digest, block_external=registry.block_external, threads=threads,
                                         metric_checkpoints=metric_checkpoints, weights_dir=config.weights_dir)
                               for a, b in ranges]
                cell.todo = list(cell.shards)
                result.cells.append(cell)
    result.digests = {spec: split.digest for spec, split in datasets.items() if split.digest is not None}
    return result


def _mark_done(result: RunPlan, config: RunConfig) -> None:
    """Look up each cell's and shard's reuse key in the results folder (held under its lock)."""
    for cell in result.cells:
        reuse = (not config.force and cell.out_file.exists()
                 and reusable(cell.out_file, cell.record.settings, cell.key, result.notes))
        if reuse:
            result.skipped.append(cell.key)
            cell.todo = []
            if reuse == "rescore":
                result.rescore.append(cell)
        elif config.force:
            _remove(cell.out_file)
        else:
            remaining = [t for t in cell.todo if not shard_done(cell.out_file, t)]
            result.reused_shards += len(cell.todo) - len(remaining)
            cell.todo = remaining


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


def _remove(cell_file: Path) -> None:
    import shutil

    shutil.rmtree(cell_file.with_suffix(".shards"), ignore_errors=True)


def _write_shard(cell: CellPlan, result) -> None:
    task = result.task
    states, arrays = state_arrays(result.states)
    record = CellRecord(cell.record.dataset, cell.record.mask, cell.record.method,
                        "ok" if result.ok else "failed", settings=cell.record.settings, metrics=cell.record.metrics,
                        rows=result.rows, error=result.error, traceback=result.traceback, seconds=result.seconds,
                        sample_ids=list(task.sample_ids), metric_errors=dict(result.metric_errors), states=states)
    write_cell(shard_path(cell.out_file, task), record, None if result.samples is None else result.samples | arrays)


def _finish(outcome: RunOutcome, cell: CellPlan, config: RunConfig) -> CellRecord:
    """Assemble a cell whose shards are all in: its set metrics are computed from the merged states
    of its shards before the cell is written."""
    def set_scores(record: CellRecord, arrays: dict, states: dict) -> None:
        metrics = {name: m for name, m in outcome.metrics[cell.key[0]].items() if m.level == "set"}
        errors: dict[str, str] = {}
        values = compute_sets(metrics, {name: states[name] for name in metrics
                                        if name in states and name not in record.metric_errors}, errors)
        record.set_scores |= {name: values[name][ALL] if name in values and name not in errors else math.nan
                              for name in metrics}
        merged = record.metric_errors | errors
        record.metric_errors = {name: merged[name] for name in record.metrics if name in merged}  # the run's order
        outcome.notes.extend(f"metric '{name}' failed on {'/'.join(cell.key)}: {error}" for name, error in errors.items())

    return assemble_cell(cell.out_file, cell.record, [shard_path(cell.out_file, t) for t in cell.shards],
                         before_write=set_scores)


def _rescore(outcome: RunOutcome, cell: CellPlan, config: RunConfig) -> None:
    """Score a finished cell that lacks some of the run's metrics from its kept 8-bit outputs."""
    spec, mask, method = cell.key
    record = read_cell(cell.out_file)
    done = (set(record.rows or {}) | set(record.set_scores)) - set(record.metric_errors or {})
    metrics = {name: m for name, m in outcome.metrics[spec].items() if name not in done}
    split = outcome.splits[spec]
    notes = score_cell(record, read_samples(cell.out_file, outputs=True), split.images, outcome.known[(spec, mask)],
                       split.labels, metrics, metric_batch_size(config), config.device)
    record.settings = cell.record.settings  # now scored with the run's metrics
    write_cell(cell.out_file, record)
    outcome.notes += notes
    outcome.notes.append(f"cell {'/'.join(cell.key)}: {', '.join(metrics)} scored from its kept 8-bit outputs "
                         f"({method} was not run again)")
    if notes:
        outcome.ran.append(record)


def run(config: RunConfig, registry: Registry | None = None, show_progress: bool = True) -> RunOutcome:
    """Plan, take the results folder, start the executor, then run every unfinished shard; returns
    what ran, what was skipped, and notes."""
    registry = registry or Registry()
    planned = plan(config, registry)
    outcome = RunOutcome(**{f.name: getattr(planned, f.name) for f in fields(RunPlan)})
    executor = registry.create("executor", outcome.executor)
    executor.start()  # an unreachable scheduler fails here, before anything is written
    lock = None
    try:
        previous, lock = prepare_out(config)
        _mark_done(outcome, config)  # a corrupt cell file is found here, before the first write
    except BaseException:
        if lock is not None:
            lock.close()
        executor.close()
        raise
    manifest = build_manifest(config, registry)
    manifest["dataset_digests"] = outcome.digests
    if isinstance(previous, dict):  # a resumed run keeps the record of earlier attempts
        history = previous.pop("history", [])
        manifest["history"] = (history if isinstance(history, list) else []) + [previous]
    bar = None
    try:
        write_manifest(config.out, manifest)
        tasks = [task for cell in outcome.cells for task in cell.todo]
        total = sum(len(t.image_ids) for t in tasks)
        bar = tqdm(total=total, unit="img", disable=not show_progress or total == 0, dynamic_ncols=True)
        by_key = {task.key: cell for cell in outcome.cells for task in cell.todo}
        remaining = {cell.key: len(cell.todo) for cell in outcome.cells}
        if executor.local:  # in this process: the caller's registry, progress per batch, the shard's name
            def fn(task: ShardTask):
                bar.set_description(task.label)
                return run_shard(task, registry=registry, progress=bar.update)
        else:
            fn = run_shard
        for cell in outcome.rescore:  # finished cells that lack only some metrics: no method runs again
            _rescore(outcome, cell, config)
        for cell in outcome.cells:  # shards all done by an interrupted run: only the cell is missing
            if cell.key not in outcome.skipped and not cell.todo:
                outcome.ran.append(_finish(outcome, cell, config))
        for result in executor.map(fn, tasks):
            cell = by_key[result.task.key]
            _write_shard(cell, result)  # this process is the only writer
            if not executor.local:
                bar.update(len(result.task.image_ids))
                bar.set_description(f"done {result.task.label}")
            remaining[cell.key] -= 1
            if remaining[cell.key] == 0:
                outcome.ran.append(_finish(outcome, cell, config))
        bar.close()
        manifest["status"] = "finished"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    except BaseException as exc:  # never leave the manifest "running"
        manifest["status"] = "failed"
        manifest["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if bar is not None:
            bar.close()  # so that what follows (an error, "interrupted") starts on a line of its own
        executor.close()
        manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            write_manifest(config.out, manifest)
        except WriteError:  # a full disk: the error that stopped the run is the one to report
            if manifest["status"] == "finished":
                raise
        finally:
            if lock is not None:
                lock.close()
    return outcome
