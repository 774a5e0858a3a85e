"""Plan a run: load and check what it reads, and cut the cells into shard tasks, before anything
is written (:func:`plan` writes nothing and starts nothing).

:func:`~benchkit.run.resolve.resolve` has checked the names and options; here every check that
needs the data runs (images, labels, masks, checkpoints, weights, the methods' own checks), so a bad
command leaves no partial output. The result is a frozen :class:`RunPlan` of cells with their task
keys and shards; what was loaded stays in the :class:`~benchkit.run.inputs.Inputs` the caller
passed, where the shards of an in-process run find it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchkit import __version__
from benchkit.checkpoints import check_model_shape, find_checkpoint
from benchkit.errors import UserError
from benchkit.files import file_digest, file_digests
from benchkit.plugin.interfaces import MethodContext
from benchkit.plugin.registry import Registry
from benchkit.plugin.spec import Spec
from benchkit.run.evaluation import metric_display
from benchkit.run.inputs import Inputs, LoadedSplit
from benchkit.run.resolve import ResolvedRun, RunConfig, worker_threads
from benchkit.run.taskkey import content_key
from benchkit.run.tasks import ShardTask, cell_texts, prepare_metrics, sample_positions
from benchkit.run.validation import check_images
from benchkit.store.cells import CellRecord, cell_path


@dataclass(frozen=True)
class CellPlan:
    """One cell of the run: its file, its record to be (dataset, mask, method, settings with the
    task key, metrics) and every shard of it, in image order."""

    key: tuple[str, str, str]  # (dataset, mask, method label)
    out_file: Path
    record: CellRecord
    shards: tuple[ShardTask, ...]


@dataclass(frozen=True)
class RunPlan:
    """What :func:`plan` found, as data: every cell and shard of the run, the notes of resolving
    and planning, and what the writer and the reports need (set-up metrics, splits, masks, display)."""

    out: Path
    cells: tuple[CellPlan, ...]
    executor: Spec
    threads: int  # torch threads each shard runs with
    notes: tuple[str, ...] = ()
    digests: dict[str, str] = field(default_factory=dict)  # content digest of each folder-like dataset
    metrics: dict = field(default_factory=dict)  # dataset -> {metric spec: metric set up for it}
    splits: dict = field(default_factory=dict)  # dataset -> its LoadedSplit
    known: dict = field(default_factory=dict)  # (dataset, mask) -> the masks of the dataset's test images
    display: dict = field(default_factory=dict)  # what reports read from the folder: order of rows, metric attributes

    @property
    def keys(self) -> list[tuple[str, str, str]]:
        """(dataset, mask, method) of every cell of the run, in order."""
        return [cell.key for cell in self.cells]


@dataclass
class _Dataset:
    """What planning one dataset gathers: its split, set-up metrics and masks, the checkpoints of
    its metrics, and the positions of its kept pictures."""

    spec: str
    split: LoadedSplit
    metrics: dict
    metric_checkpoints: dict
    known: dict
    kept: list[int]


def load_dataset(config: RunConfig, inputs: Inputs, spec: str) -> LoadedSplit:
    """The checked test split of one dataset spec (kept by ``inputs`` for the run's shards)."""
    split = inputs.split(spec, config.data_dir, config.n_images)
    check_images(split.images, f"dataset '{spec}'")
    if split.keys is not None and len(split.keys) != len(split.images):
        raise UserError(f"dataset '{spec}' gave {len(split.keys)} image keys for {len(split.images)} images: "
                        "fix the plugin")
    return split


def plan(resolved: ResolvedRun, inputs: Inputs) -> RunPlan:
    """Load and check what the run reads and plan its shards; writes nothing, starts nothing.
    What it loads (splits, masks, set-up metrics) stays in ``inputs`` for the shards."""
    planner = _Planner(resolved, inputs)
    splits = _load_datasets(resolved, inputs, planner.notes)
    planned = {spec: planner.dataset(spec, split) for spec, split in splits.items()}
    cells = [cell for data in planned.values() for spec in resolved.methods for cell in planner.cells(data, spec)]
    return RunPlan(out=resolved.config.out, cells=tuple(cells), executor=resolved.executor, threads=planner.threads,
                   notes=tuple(planner.notes),
                   digests={s: d.split.digest for s, d in planned.items() if d.split.digest is not None},
                   metrics={s: d.metrics for s, d in planned.items()}, splits=splits,
                   known={(s, m): k for s, d in planned.items() for m, k in d.known.items()},
                   display={"datasets": list(splits), "masks": list(planner.masks), "methods": list(planner.methods),
                            "metrics": {n: metric_display(inputs.registry.create("metric", n))
                                        for n in planner.metric_names}})


def _load_datasets(resolved: ResolvedRun, inputs: Inputs, notes: list[str]) -> dict[str, LoadedSplit]:
    """Every dataset's checked test split; one not on disk is skipped with a note where the run
    allows it (a preset's), else it stops the run."""
    config, splits, missing = resolved.config, {}, []
    for spec in (s.canonical for s in resolved.datasets):
        try:
            splits[spec] = load_dataset(config, inputs, spec)
        except UserError as exc:
            if not config.optional_datasets:
                raise
            missing.append(f"skipped dataset '{spec}': {exc}")
    if not splits:
        raise UserError("no dataset to run: " + "; ".join(missing) + "; or name others with --datasets")
    notes += missing
    notes += [f"--n-images {config.n_images} is more than the {len(split.images)} test images of '{spec}': "
              f"it runs on all {len(split.images)}" for spec, split in splits.items()
              if config.n_images > len(split.images)]
    return splits


def _files_key(files: dict[str, str]) -> str | None:
    """The content key of the files a mask reads (None for drawn masks)."""
    return content_key(files) if files else None


class _Planner:
    """The steps of :func:`plan` over one resolved run: set up each dataset's metrics and masks,
    check each method there, and cut each cell into shard tasks. Holds only what the steps share."""

    def __init__(self, resolved: ResolvedRun, inputs: Inputs) -> None:
        self.resolved, self.config, self.inputs, self.registry = resolved, resolved.config, inputs, inputs.registry
        self.notes = list(resolved.notes)
        self.methods = {s.label: self.registry.create("method", s) for s in resolved.methods}
        self.masks = {s.canonical: self.registry.create("mask", s) for s in resolved.masks}
        self.mask_files = {name: file_digests(generator.input_files()) for name, generator in self.masks.items()}
        self.metric_names = [s.canonical for s in resolved.metrics]
        self.specs = {(s.kind, s.canonical): s for s in (*resolved.datasets, *resolved.masks)}  # what tasks carry
        executor = self.registry.get("executor", resolved.executor.name).cls  # created and started by run()
        workers = 1 if executor.local else int(getattr(self.registry.create("executor", resolved.executor),
                                                       "workers", 1))
        self.threads = worker_threads(self.config.threads, workers, self.notes)
        self.shard_size = self.config.shard_size or executor.default_shard_size

    def dataset(self, spec: str, split: LoadedSplit) -> _Dataset:
        """Set up the metrics for a dataset and make (and check) every mask of it, before any write."""
        config, registry = self.config, self.registry
        _, _, height, width = split.images.shape
        for name in self.metric_names:
            side = registry.get("metric", Spec.parse(name, "metric").name).cls.min_size
            if min(height, width) < side:
                raise UserError(f"metric '{name}' needs images of at least {side}x{side} pixels, but '{spec}' has "
                                f"{height}x{width}: use larger images (e.g. -o folder.size=64) or leave {name} "
                                "out of --metrics")
        metrics, checkpoints = prepare_metrics(self.inputs, self.metric_names, spec, split, config.device,
                                               config.models_dir, config.weights_dir, config.seed)
        known = {mask: self.inputs.masks(spec, mask, config.seed, split, config.n_images,
                                         files=_files_key(self.mask_files[mask]), generator=generator)
                 for mask, generator in self.masks.items()}
        kept = sample_positions(len(split.images), config.seed, split.digest or spec)
        return _Dataset(spec, split, metrics, checkpoints, known, kept)

    @staticmethod
    def check_texts(data: _Dataset, method: str, texts: list[str] | None) -> None:
        """Before any write: a metric that scores images against text (``clip-score``) has a text for
        every image of the cell."""
        if texts is not None:
            return
        for name, metric in data.metrics.items():
            if metric.needs_texts:
                raise UserError(f"metric '{name}' needs a text per image, and method '{method}' on '{data.spec}' has "
                                "none: give the method a prompt (diffusers:DIR[prompt=...]) or the folder a "
                                "captions.csv (columns file,caption)")

    def context(self, data: _Dataset, spec: Spec) -> MethodContext | None:
        """A method's context on a dataset, after its checkpoint, its training data and its own
        checks are found good; None (with a note) where the run may skip a method that cannot run here."""
        method, split, config = self.methods[spec.label], data.split, self.config
        checkpoint = None
        try:
            if method.needs_checkpoint:
                checkpoint = find_checkpoint(method.needs_checkpoint, data.spec, config.models_dir,
                                             method.checkpoint_dirs, split.dataset.models_from)
            if method.needs_train_data:
                split.dataset.check_files("train")  # every file a worker will read, cheaply (headers)
                check_images(split.dataset.images("train", limit=1), f"dataset '{data.spec}' (train split)")
        except UserError as exc:
            if not self.resolved.lenient:
                raise
            self.notes.append(f"skipped method '{spec.label}' on '{data.spec}': {exc}")
            return None
        n, channels, height, width = split.images.shape
        context = MethodContext(dataset=data.spec, device=torch.device(config.device),
                                image_shape=(channels, height, width), checkpoint=checkpoint, seed=config.seed,
                                masks=tuple(self.masks), image_ids=tuple(range(n)), dataset_digest=split.digest,
                                image_keys=tuple(split.keys) if split.keys is not None else None,
                                captions=tuple(split.captions) if split.captions is not None else None)
        if checkpoint is not None:
            check_model_shape(checkpoint, (channels, height, width))  # from its JSON, before any write
        method.check(context)  # the method's own cheap checks
        return context

    def cells(self, data: _Dataset, spec: Spec) -> list[CellPlan]:
        """The cells of one method on one dataset, one per mask."""
        context = self.context(data, spec)
        if context is None:
            return []
        method = self.methods[spec.label]
        batch = self.config.batch_size or method.preferred_batch_size(context.device, context.image_shape)
        return [self.cell(data, spec, mask, context, batch) for mask in self.masks]

    def identity(self, data: _Dataset, spec: Spec, mask: str, checkpoint: str | None,
                 files: dict[str, str]) -> dict[str, Any]:
        """Everything a cell reads, for its task key: specs, seed, images, checkpoint and other
        files, versions."""
        identity: dict[str, Any] = {
            "dataset": data.spec, "mask": mask, "method": spec.canonical, "seed": self.config.seed,
            "n_images": len(data.split.images), "dataset_digest": data.split.digest,
            "checkpoint_sha256": file_digest(checkpoint), "benchkit": __version__,
            "versions": {kind: _distribution_version(self.registry, kind, s) for kind, s in
                         (("dataset", data.spec), ("mask", mask), ("method", spec.canonical))}}
        if self.config.bins:  # the set metrics' states are kept per bin
            identity["bins"] = self.config.bins
        if files:  # predictions, mask images: a changed file redoes the cells that read it
            identity["input_files"] = files
        return identity

    def cell(self, data: _Dataset, spec: Spec, mask: str, context: MethodContext, batch: int) -> CellPlan:
        """A cell's plan: its record to be, and its shard tasks of ``--shard-size`` images each."""
        config, n = self.config, len(data.split.images)
        checkpoint = str(context.checkpoint) if context.checkpoint else None
        files = self.mask_files[mask] | file_digests(self.methods[spec.label].input_files(context, mask))
        identity = self.identity(data, spec, mask, checkpoint, files)
        provenance = self.methods[spec.label].provenance()
        if provenance:  # a published model's loader, convention and libraries
            identity["provenance"] = provenance
        texts = cell_texts(self.methods[spec.label], data.split, list(range(n)))
        self.check_texts(data, spec.label, texts)
        settings = {"n_images": n, "seed": config.seed, "metrics": sorted(self.metric_names), "checkpoint": checkpoint,
                    "dataset_digest": data.split.digest, "benchkit": __version__,
                    "method_version": identity["versions"]["method"], "task_key": content_key(identity),
                    "input_files": files, **({"provenance": provenance} if provenance else {}),
                    **({"texts": texts} if texts is not None else {})}
        record = CellRecord(data.spec, mask, spec.label, "ok", settings=settings, metrics=list(self.metric_names),
                            bins=config.bins)
        size = self.shard_size or n
        shards = tuple(ShardTask(dataset=self.specs[("dataset", data.spec)], mask=self.specs[("mask", mask)],
                                 method=spec, image_ids=tuple(range(a, min(a + size, n))), n_images=config.n_images,
                                 metrics=self.resolved.metrics, seed=config.seed,
                                 key=content_key(identity | {"image_ids": [a, min(a + size, n)],
                                                             "metrics": self.metric_names}),
                                 data_dir=config.data_dir, checkpoint=checkpoint, batch_size=batch,
                                 device=config.device, sample_ids=tuple(i for i in data.kept if a <= i < a + size),
                                 digest=data.split.digest, block_external=self.registry.block_external,
                                 threads=self.threads, metric_checkpoints=data.metric_checkpoints,
                                 weights_dir=config.weights_dir, bins=config.bins,
                                 mask_files=_files_key(self.mask_files[mask]))
                       for a in range(0, n, size))
        return CellPlan((data.spec, mask, spec.label), cell_path(config.out, data.spec, mask, spec.label), record,
                        shards)


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


