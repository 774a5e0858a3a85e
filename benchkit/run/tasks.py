"""The unit of work: a shard, i.e. some images of one (dataset, mask, method) cell.

A :class:`ShardTask` names what to compute (dataset, mask, method, their options, the image
positions, the seed) and carries no tensors, so it can be pickled, logged and sent to another
process or machine. :func:`run_shard` (module level, so executors can ship it by reference) rebuilds
the images and masks where it runs (masks are deterministic), runs the method, updates every metric
with its composites (per-image columns, and the states of set metrics, which the writer merges per
cell) and returns a :class:`ShardResult`; it writes nothing. Datasets, masks and method setups are cached per process,
keyed by what they depend on, so a worker that gets many shards loads, masks and sets up once; the
runner fills the same cache while it plans, so an in-process run reads each dataset and makes each
mask once.
"""
from __future__ import annotations

import hashlib
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchkit.errors import UserError
from benchkit.imaging import to_uint8
from benchkit.plugin.interfaces import Dataset, Method, MethodContext
from benchkit.plugin.metric import FeatureBank
from benchkit.plugin.spec import Spec
from benchkit.run.evaluation import (
    FailedSetup,
    Scorer,
    check_labels,
    hole_bins,
    metric_checkpoint,
    metric_context,
)
from benchkit.run.masking import make_masks
from benchkit.run.taskkey import content_key
from benchkit.run.validation import BadOutput, check_output

N_SAMPLES = 16  # images per cell kept for pictures, chosen by the run's seed
_CACHE: dict = {}  # per process: registry, datasets, masks and set-up methods (see _cached)


def sample_positions(n: int, seed: int, dataset: str, k: int = N_SAMPLES) -> list[int]:
    """Positions (sorted) of the ``min(k, n)`` test images kept for pictures: drawn from
    (seed, dataset identity) only, so every method and mask of a dataset keeps the same images
    (``dataset`` is the name, or the content digest of a folder, which does not depend on its path)."""
    rng = np.random.default_rng([seed, zlib.crc32(dataset.encode()), 1])
    return sorted(rng.choice(n, size=min(k, n), replace=False).tolist())


@dataclass(frozen=True)
class ShardTask:
    """What to compute for some images of a cell: canonical specs and numbers only (picklable).

    ``dataset``, ``mask``, ``method`` and ``metrics`` are canonical spec strings
    (:class:`benchkit.plugin.spec.Spec`), which carry every non-default option. ``image_ids`` are positions
    in the dataset's test split, whose first ``n_images`` images the run uses; ``sample_ids`` are
    those of them kept for pictures. ``digest`` is the content digest of a folder-like dataset (None
    for named ones): a worker whose cached copy differs reloads it. ``key`` is the shard's reuse key
    (:mod:`benchkit.run.taskkey`), which also names its file.
    """

    dataset: str
    mask: str
    method: str
    image_ids: tuple[int, ...]
    n_images: int
    metrics: tuple[str, ...]
    key: str = ""
    seed: int = 0
    data_dir: str | None = None  # where the dataset's files are looked for first: not part of its identity
    checkpoint: str | None = None
    batch_size: int = 64
    device: str = "cpu"
    sample_ids: tuple[int, ...] = ()
    digest: str | None = None
    block_external: bool | None = None
    threads: int | None = None  # torch threads in the worker (the run's --threads; None: leave as is)
    metric_checkpoints: dict = field(default_factory=dict)  # metric spec -> its checkpoint, for those that need one
    weights_dir: str | None = None
    bins: str | None = None  # hole-area binning of the set metrics (evaluation.HOLE_BINS), or none
    mask_files: str | None = None  # content key of the files a mask reads (file: masks): cached masks follow them

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.mask}/{self.method}[{self.image_ids[0]}:{self.image_ids[-1] + 1}]"


@dataclass
class ShardResult:
    """What a worker sends back: per-image rows (or the error), and the kept pictures as uint8."""

    task: ShardTask
    rows: dict | None = None  # image_id, seconds, missing_fraction and one list per metric
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    samples: dict[str, np.ndarray] | None = None  # ids, samples, truth (uint8 NCHW), known (bool)
    metric_errors: dict[str, str] = field(default_factory=dict)  # metric -> error; its column is NaN
    states: dict = field(default_factory=dict)  # set metric -> subset -> MetricState, merged by the writer

    @property
    def ok(self) -> bool:
        return self.error is None


def clear_cache() -> None:
    """Forget cached datasets and method setups (the runner calls it when it starts planning a run)."""
    _CACHE.clear()


def _cached(key, build):
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def _key(*parts) -> tuple:
    """A per-process cache key: the kind of object and the content key of what it depends on."""
    return parts[0], content_key(parts[1:])


@dataclass(frozen=True)
class LoadedSplit:
    """A dataset's test images as a run uses them: the first ``n_images`` (0: all), their content
    keys (None for named datasets) and the digest of those keys, which identifies a folder's content."""

    dataset: Dataset
    images: torch.Tensor
    keys: list[str] | None
    digest: str | None
    labels: torch.Tensor | None = None  # N int64 class indices, where the dataset has them


def content_digest(keys: list[str] | None) -> str | None:
    """SHA-256 of a dataset's image keys in order (None when the dataset gives no keys)."""
    return hashlib.sha256("".join(keys).encode()).hexdigest() if keys is not None else None


def create_dataset(registry, spec: str, data_dir: str | None):
    """The dataset of a canonical spec, looking in ``data_dir`` first where the dataset takes one
    (a third party's need not). ``data_dir`` says where files are, not which: it is no option."""
    extra = {"data_dir": data_dir} if data_dir and registry.accepts("dataset", spec, "data_dir") else {}
    return registry.create("dataset", spec, extra)


def load_test_split(registry, spec: str, data_dir: str | None, n_images: int, fresh: bool = False) -> LoadedSplit:
    """Load (once per process, unless ``fresh``) the test images a run of ``spec`` uses.

    The runner loads every dataset here while it plans, so an in-process run reads each one once.
    """
    key = _key("dataset", spec, data_dir, n_images)
    if fresh or key not in _CACHE:
        dataset = create_dataset(registry, spec, data_dir)
        images = dataset.images("test", limit=n_images or None)
        keys = dataset.image_keys("test", limit=n_images or None)
        labels = dataset.labels("test", limit=n_images or None)
        _CACHE[key] = LoadedSplit(dataset, images, keys, content_digest(keys), labels)
    return _CACHE[key]


def split_masks(generator, dataset: str, mask: str, seed: int, split: LoadedSplit,
                n_images: int, ids: list[int] | None = None, files: str | None = None) -> torch.Tensor:
    """The masks of images ``ids`` of a loaded split (all if None), made once per process.

    The runner makes (and checks) every mask while it plans, so an in-process run's shards take
    theirs from that; a worker elsewhere makes only its shards' masks, once for all methods.
    ``files`` is the content key of the files the masks are read from, if any: changed files are read again.
    """
    key = _key("masks", dataset, mask, seed, split.digest, n_images, files)
    if ids is not None and key in _CACHE:
        return _CACHE[key][ids]
    ids = list(range(len(split.images))) if ids is None else ids
    keys = [split.keys[i] for i in ids] if split.keys is not None else None
    _, _, height, width = split.images.shape
    return _cached(key if len(ids) == len(split.images) else _key("masks", key, ids),
                   lambda: make_masks(generator, dataset, mask, ids, height, width, seed, keys))


def _dataset_images(task: ShardTask, registry) -> LoadedSplit:
    split = load_test_split(registry, task.dataset, task.data_dir, task.n_images)
    if split.digest != task.digest:  # a long-lived worker whose folder changed: read it again
        split = load_test_split(registry, task.dataset, task.data_dir, task.n_images, fresh=True)
    if split.digest != task.digest:
        raise RuntimeError(f"dataset '{task.dataset}' here differs from the client's (content digest "
                           f"{str(split.digest)[:12]}, expected {str(task.digest)[:12]}): give every worker the "
                           "same files")
    return split


def _method(task: ShardTask, registry, image_shape) -> Method:
    key = _key("method", task.method, task.dataset, task.data_dir, task.checkpoint, task.device, tuple(image_shape),
               task.seed, task.digest)

    def build():
        method = registry.create("method", task.method)
        context = MethodContext(dataset=task.dataset, device=torch.device(task.device),
                                image_shape=tuple(image_shape),
                                checkpoint=Path(task.checkpoint) if task.checkpoint else None, seed=task.seed)
        if method.needs_train_data:
            context.train_images = _dataset_images(task, registry).dataset.images("train")
        method.setup(context)
        return method

    return _cached(key, build)


def prepared_metric(registry, name: str, context) -> object:
    """The metric of canonical spec ``name``, set up for ``context``, once per process.

    A ``setup`` that raises a UserError (missing weights, a checkpoint that does not fit) raises it:
    bad input. Any other exception is a bug in the metric: a :class:`FailedSetup` stands in for it
    (and is cached), so only its column fails.
    """
    key = _key("metric", name, context.dataset, str(context.checkpoint), str(context.device),
               tuple(context.image_shape), str(context.weights_dir), context.seed)

    def build():
        metric = registry.create("metric", name)
        try:
            metric.setup(context)
        except UserError:
            raise
        except Exception as exc:
            return FailedSetup(metric.level, exc)
        return metric

    return _cached(key, build)


def prepare_metrics(registry, names: list[str], spec: str, split: LoadedSplit, device: str,
                    models_dir: str | None, weights: str | None, seed: int) -> tuple[dict, dict[str, str]]:
    """Create, check and set up each metric of ``names`` (canonical specs) for one dataset, once per process.

    Raises UserError (before anything is written) when a metric needs labels the dataset lacks, or
    a checkpoint or weights file that is missing. Returns the metrics and the checkpoint path of
    each metric that needs one (for the shards).
    """
    metrics, checkpoints = {}, {}
    for name in names:
        metric = registry.create("metric", name)
        check_labels(name, metric, spec, split.labels, len(split.images))
        checkpoint = metric_checkpoint(metric, spec, split.dataset, models_dir)
        if checkpoint is not None:
            checkpoints[name] = str(checkpoint)
        context = metric_context(spec, device, split.images.shape[1:], checkpoint, weights, seed)
        metrics[name] = prepared_metric(registry, name, context)
    return metrics, checkpoints


def _metrics(task: ShardTask, registry, image_shape) -> dict:
    """The task's metrics, set up here (in-process: the plan's, from the cache). One whose files are
    missing here, though the plan found them on the client, fails only its column."""
    metrics = {}
    for name in task.metrics:
        context = metric_context(task.dataset, task.device, image_shape, task.metric_checkpoints.get(name),
                                 task.weights_dir, task.seed)
        try:
            metrics[name] = prepared_metric(registry, name, context)
        except UserError as exc:
            metrics[name] = FailedSetup(registry.get("metric", Spec.parse(name, "metric").name).cls.level, exc)
    return metrics


def _registry(task: ShardTask):
    from benchkit.plugin.registry import Registry

    return _cached(("registry", task.block_external), lambda: Registry(block_external=task.block_external))


def run_shard(task: ShardTask, registry=None, progress: Callable[[int], None] | None = None) -> ShardResult:
    """Run a method on a shard's images, score it, return the rows (nothing is written here).

    A method or metric that raises, or a method that returns a bad tensor, gives a result with its
    error and traceback instead of rows; the run goes on. ``registry`` defaults to one built in this
    process from ``task.block_external``; ``progress(n)`` is called after each batch.
    """
    if task.threads:
        torch.set_num_threads(task.threads)
    result = ShardResult(task)
    started = time.perf_counter()
    try:
        registry = registry or _registry(task)
        split = _dataset_images(task, registry)
        images = split.images
        ids = list(task.image_ids)
        n = len(ids)
        generator = _cached(_key("mask", task.mask, task.mask_files), lambda: registry.create("mask", task.mask))
        known_all = split_masks(generator, task.dataset, task.mask, task.seed, split, task.n_images, ids,
                                task.mask_files)
        method = _method(task, registry, images.shape[1:])
        setup_seconds = time.perf_counter() - started
        device = torch.device(task.device)
        labels_all = split.labels[ids] if split.labels is not None else None
        bank = _cached(_key("features", task.dataset, task.digest, task.device), FeatureBank)
        missing = (~known_all).flatten(1).float().mean(1)
        scorer = Scorer(_metrics(task, registry, images.shape[1:]), n, device, bank,
                        subsets=hole_bins(missing.numpy(), task.bins))
        outputs = np.empty((n, *images.shape[1:]), dtype=np.uint8)  # every composite, kept to add metrics later
        seconds: list[float] = []
        for start in range(0, n, task.batch_size):  # one batch in memory at a time: made, scored, kept as uint8
            batch_ids = ids[start:start + task.batch_size]
            truth = images[_rows(batch_ids)].to(device)
            known = known_all[start:start + task.batch_size].to(device)
            corrupted = truth * known  # missing pixels zeroed: no method sees the ground truth
            t0 = time.perf_counter()
            cell = {"mask": task.mask, "image_ids": tuple(batch_ids)}
            prediction = method.inpaint(corrupted, known, **(cell if method.needs_cell else {}))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            batch_seconds = time.perf_counter() - t0
            prediction = check_output(prediction, corrupted, known)
            composite = torch.where(known, truth, prediction).clamp_(0, 1)  # within the tolerance; truth is in [0, 1]
            scorer.add(composite, truth, known, None if labels_all is None else labels_all[start:start + len(truth)],
                       tuple(batch_ids), raw=prediction)
            outputs[start:start + len(truth)] = _uint8(composite.cpu())
            seconds += [(batch_seconds + setup_seconds * len(truth) / n) / len(truth)] * len(truth)
            if progress is not None:
                progress(len(truth))
        rows = {"image_id": ids, "seconds": seconds,
                "missing_fraction": missing.tolist()}
        scores = scorer.finish()
        rows |= scores.columns
        result.metric_errors, result.states = scores.errors, scores.states
        keep = [ids.index(i) for i in task.sample_ids]
        result.rows = rows
        result.samples = {"ids": np.asarray(task.sample_ids, dtype=np.int64), "samples": outputs[keep],
                          "truth": _uint8(images[list(task.sample_ids)]), "known": known_all[keep].numpy(),
                          "output_ids": np.asarray(ids, dtype=np.int64), "outputs": outputs}
    except Exception as exc:  # a failing method (or a worker without the data) must not stop the run
        result.error = str(exc) if isinstance(exc, BadOutput) else f"{type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
        result.rows = result.samples = None
    result.seconds = time.perf_counter() - started
    return result


def _rows(ids: list[int]) -> slice | list[int]:
    """Index for the rows ``ids``: a slice (a view, no copy) when they are consecutive."""
    if ids and ids == list(range(ids[0], ids[0] + len(ids))):
        return slice(ids[0], ids[0] + len(ids))
    return ids


def _uint8(images: torch.Tensor) -> np.ndarray:
    """``N x C x H x W`` float in [0, 1] -> the same layout in uint8."""
    return to_uint8(images).transpose(0, 3, 1, 2)
