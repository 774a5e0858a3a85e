"""The unit of work: a shard, i.e. some images of one (dataset, mask, method) cell.

A :class:`ShardTask` names what to compute (dataset, mask, method, their options, the image
positions, the seed) and carries no tensors, so it can be pickled, logged and sent to another
process or machine. :func:`run_shard` (module level, so executors can ship it by reference) rebuilds
the images and masks where it runs (masks are deterministic), runs the method, updates every metric
with its composites (per-image columns, and the states of set metrics, which the writer merges per
cell) and returns a :class:`ShardResult`; it writes nothing. What it loads is owned by an
:class:`~benchkit.run.inputs.Inputs`: the plan's in an in-process run (which read each dataset and
made each mask while planning), a worker's own elsewhere, so a worker that gets many shards of a
cell loads, masks and sets up once.
"""
from __future__ import annotations

import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from benchkit.errors import UserError
from benchkit.imaging import to_uint8
from benchkit.plugin.spec import Spec
from benchkit.run.evaluation import (
    FailedSetup,
    Scorer,
    check_labels,
    hole_bins,
    metric_checkpoint,
    metric_context,
)
from benchkit.run.inputs import Inputs, LoadedSplit, worker_inputs
from benchkit.run.validation import BadOutput, check_output

N_SAMPLES = 16  # images per cell kept for pictures, chosen by the run's seed


def sample_positions(n: int, seed: int, dataset: str, k: int = N_SAMPLES) -> list[int]:
    """Positions (sorted) of the ``min(k, n)`` test images kept for pictures: drawn from
    (seed, dataset identity) only, so every method and mask of a dataset keeps the same images
    (``dataset`` is the name, or the content digest of a folder, which does not depend on its path)."""
    rng = np.random.default_rng([seed, zlib.crc32(dataset.encode()), 1])
    return sorted(rng.choice(n, size=min(k, n), replace=False).tolist())


@dataclass(frozen=True)
class ShardTask:
    """What to compute for some images of a cell: canonical specs and numbers only (picklable).

    ``dataset``, ``mask``, ``method`` and ``metrics`` are the run's resolved
    :class:`benchkit.plugin.spec.Spec` objects (frozen, picklable), created where the shard runs
    without being parsed or resolved again; ``str(spec)`` is the canonical string. ``image_ids`` are positions
    in the dataset's test split, whose first ``n_images`` images the run uses; ``sample_ids`` are
    those of them kept for pictures. ``digest`` is the content digest of a folder-like dataset (None
    for named ones): a worker whose cached copy differs reloads it. ``key`` is the shard's reuse key
    (:mod:`benchkit.run.taskkey`), which also names its file.
    """

    dataset: Spec
    mask: Spec
    method: Spec
    image_ids: tuple[int, ...]
    n_images: int
    metrics: tuple[Spec, ...]
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


def _dataset_images(task: ShardTask, inputs: Inputs) -> LoadedSplit:
    split = inputs.split(task.dataset, task.data_dir, task.n_images)
    if split.digest != task.digest:  # a long-lived worker whose folder changed: read it again
        split = inputs.split(task.dataset, task.data_dir, task.n_images, fresh=True)
    if split.digest != task.digest:
        raise UserError(f"dataset '{task.dataset}' here differs from the client's (content digest "
                        f"{str(split.digest)[:12]}, expected {str(task.digest)[:12]}): give every worker the "
                        "same files")
    return split


def prepare_metrics(inputs: Inputs, names: list[str], spec: str, split: LoadedSplit, device: str,
                    models_dir: str | None, weights: str | None, seed: int) -> tuple[dict, dict[str, str]]:
    """Create, check and set up each metric of ``names`` (canonical specs) for one dataset, once per ``inputs``.

    Raises UserError (before anything is written) when a metric needs labels the dataset lacks, or
    a checkpoint or weights file that is missing. Returns the metrics and the checkpoint path of
    each metric that needs one (for the shards).
    """
    metrics, checkpoints = {}, {}
    for name in names:
        metric = inputs.registry.create("metric", name)
        check_labels(name, metric, spec, split.labels, len(split.images))
        checkpoint = metric_checkpoint(metric, spec, split.dataset, models_dir)
        if checkpoint is not None:
            checkpoints[name] = str(checkpoint)
        context = metric_context(spec, device, split.images.shape[1:], checkpoint, weights, seed)
        metrics[name] = inputs.metric(name, context)
    return metrics, checkpoints


def _metrics(task: ShardTask, inputs: Inputs, image_shape) -> dict:
    """The task's metrics, set up here (in-process: the plan's, already set up). One whose files are
    missing here, though the plan found them on the client, fails only its column."""
    metrics = {}
    for spec in task.metrics:
        name = str(spec)  # a column's name, and the key of the plan's set-up metric
        context = metric_context(str(task.dataset), task.device, image_shape, task.metric_checkpoints.get(name),
                                 task.weights_dir, task.seed)
        try:
            metrics[name] = inputs.metric(spec, context)
        except UserError as exc:
            metrics[name] = FailedSetup(inputs.metric_level(spec), exc)
    return metrics


def cell_texts(method, split: LoadedSplit, ids: list[int]) -> list[str] | None:
    """The text each image of ``ids`` is scored against by text metrics: the method's prompts where
    it takes text, else the dataset's captions, else None."""
    prompts = method.prompts(ids)
    if prompts is not None:
        return list(prompts)
    return [split.captions[i] for i in ids] if split.captions is not None else None


def run_shard(task: ShardTask, inputs: Inputs | None = None,
              progress: Callable[[int], None] | None = None) -> ShardResult:
    """Run a method on a shard's images, score it, return the rows (nothing is written here).

    A method or metric that raises, or a method that returns a bad tensor, gives a result with its
    error and traceback instead of rows; the run goes on. ``inputs`` is the caller's (an in-process
    run hands the plan's); a worker uses its own (:func:`~benchkit.run.inputs.worker_inputs`).
    ``progress(n)`` is called after each batch.
    """
    if task.threads:
        torch.set_num_threads(task.threads)
    result = ShardResult(task)
    started = time.perf_counter()
    try:
        inputs = inputs or worker_inputs(task.block_external)
        split = _dataset_images(task, inputs)
        ids = list(task.image_ids)
        known = inputs.masks(str(task.dataset), task.mask, task.seed, split, task.n_images, ids, task.mask_files)
        method = inputs.method(task, split.images.shape[1:], lambda: split.dataset.images("train"), split.captions)
        _inpaint_and_score(task, inputs, split, known, method, result, time.perf_counter() - started, progress)
    except Exception as exc:  # a failing method (or a worker without the data) must not stop the run
        result.error = str(exc) if isinstance(exc, BadOutput) else f"{type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
        result.rows = result.samples = None
    result.seconds = time.perf_counter() - started
    return result


def _inpaint_and_score(task: ShardTask, inputs: Inputs, split: LoadedSplit, known_all: torch.Tensor, method,
                       result: ShardResult, setup_seconds: float, progress) -> None:
    """One batch in memory at a time: masked, inpainted, checked, composited, scored, kept as uint8;
    fills ``result``'s rows, metric states and kept pictures."""
    images, ids, device = split.images, list(task.image_ids), torch.device(task.device)
    n = len(ids)
    labels_all = split.labels[ids] if split.labels is not None else None
    texts_all = cell_texts(method, split, ids)
    missing = (~known_all).flatten(1).float().mean(1)
    bank = inputs.bank(str(task.dataset), task.digest, task.device)
    scorer = Scorer(_metrics(task, inputs, images.shape[1:]), n, device, bank,
                    subsets=hole_bins(missing.numpy(), task.bins))
    outputs = np.empty((n, *images.shape[1:]), dtype=np.uint8)  # every composite, kept to add metrics later
    seconds: list[float] = []
    for start in range(0, n, task.batch_size):
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
                   tuple(batch_ids), raw=prediction,
                   texts=None if texts_all is None else tuple(texts_all[start:start + len(truth)]))
        outputs[start:start + len(truth)] = _uint8(composite.cpu())
        seconds += [(batch_seconds + setup_seconds * len(truth) / n) / len(truth)] * len(truth)
        if progress is not None:
            progress(len(truth))
    scores = scorer.finish()
    result.rows = {"image_id": ids, "seconds": seconds, "missing_fraction": missing.tolist()} | scores.columns
    result.metric_errors, result.states = scores.errors, scores.states
    keep = [ids.index(i) for i in task.sample_ids]
    result.samples = {"ids": np.asarray(task.sample_ids, dtype=np.int64), "samples": outputs[keep],
                      "truth": _uint8(images[list(task.sample_ids)]), "known": known_all[keep].numpy(),
                      "output_ids": np.asarray(ids, dtype=np.int64), "outputs": outputs}


def _rows(ids: list[int]) -> slice | list[int]:
    """Index for the rows ``ids``: a slice (a view, no copy) when they are consecutive."""
    if ids and ids == list(range(ids[0], ids[0] + len(ids))):
        return slice(ids[0], ids[0] + len(ids))
    return ids


def _uint8(images: torch.Tensor) -> np.ndarray:
    """``N x C x H x W`` float in [0, 1] -> the same layout in uint8."""
    return to_uint8(images).transpose(0, 3, 1, 2)
