"""One unit of work: a (dataset, mask, method) cell, run from a picklable task with no global state.

An executor (in-process now, distributed later) calls :func:`run_cell` on each :class:`CellTask`.
The cell's rows are written atomically to ``task.out_file`` when it finishes, or its error if the
method raised.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from benchkit.errors import UserError
from benchkit.imaging import to_uint8
from benchkit.interfaces import MethodContext
from benchkit.results import CellRecord, write_cell

N_SAMPLES = 16  # images per cell kept for pictures, chosen by the run's seed


def sample_positions(n: int, seed: int, dataset: str, k: int = N_SAMPLES) -> list[int]:
    """Positions (sorted) of the ``min(k, n)`` test images kept for pictures: drawn from
    (seed, dataset identity) only, so every method and mask of a dataset keeps the same images
    (``dataset`` is the name, or the content digest of a folder, which does not depend on its path)."""
    import zlib

    rng = np.random.default_rng([seed, zlib.crc32(dataset.encode()), 1])
    return sorted(rng.choice(n, size=min(k, n), replace=False).tolist())


@dataclass
class CellTask:
    """Everything needed to run one cell, picklable (tensors, strings, numbers only)."""

    dataset: str
    mask: str
    method: str
    images: torch.Tensor  # N x C x H x W float32 in [0, 1], ground truth
    known: torch.Tensor  # N x 1 x H x W bool
    image_ids: list[int]
    metrics: list[str]
    out_file: str
    settings: dict  # recorded in the cell: n_images, seed, options ...
    method_options: dict = field(default_factory=dict)
    dataset_options: dict = field(default_factory=dict)
    checkpoint: str | None = None
    seed: int = 0
    batch_size: int = 64
    device: str = "cpu"
    block_external: bool | None = None


def run_cell(task: CellTask, registry=None, progress: Callable[[int], None] | None = None) -> CellRecord:
    """Run a method on a cell's images, score it, write the cell file, return its record.

    A method that raises (or returns a bad tensor) gives a record with ``status == "failed"``; a
    UserError from setup (bad options, missing data) propagates, since it is the user's to fix.
    """
    if registry is None:
        from benchkit.registry import Registry

        registry = Registry(block_external=task.block_external)
    record = CellRecord(dataset=task.dataset, mask=task.mask, method=task.method, status="ok",
                        settings=task.settings, metrics=list(task.metrics))
    method = registry.create("method", task.method, task.method_options)
    metrics = {name: registry.create("metric", name) for name in task.metrics}
    device = torch.device(task.device)
    n = len(task.image_ids)
    started = time.perf_counter()
    try:
        context = MethodContext(dataset=task.dataset, device=device, image_shape=tuple(task.images.shape[1:]),
                                checkpoint=Path(task.checkpoint) if task.checkpoint else None, seed=task.seed)
        if method.needs_train_data:
            dataset = registry.create("dataset", task.dataset, task.dataset_options)
            context.train_images = dataset.images("train")
        method.setup(context)
        setup_seconds = time.perf_counter() - started
        outputs, seconds = [], []
        for start in range(0, n, task.batch_size):
            truth = task.images[start:start + task.batch_size].to(device)
            known = task.known[start:start + task.batch_size].to(device)
            corrupted = truth * known  # missing pixels zeroed: no method sees the ground truth
            t0 = time.perf_counter()
            prediction = method.inpaint(corrupted, known)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            batch_seconds = time.perf_counter() - t0
            if not isinstance(prediction, torch.Tensor) or prediction.shape != truth.shape:
                raise ValueError(f"method returned shape {getattr(prediction, 'shape', type(prediction))}, "
                                 f"expected {tuple(truth.shape)}")
            prediction = prediction.to(device, torch.float32)
            if not torch.isfinite(prediction[~known.expand_as(prediction)]).all():
                raise ValueError("method returned NaN or infinite values in the hole")
            prediction = prediction.clamp(0, 1)
            outputs.append(torch.where(known, truth, prediction).cpu())
            seconds += [(batch_seconds + setup_seconds * len(truth) / n) / len(truth)] * len(truth)
            if progress is not None:
                progress(len(truth))
        composite = torch.cat(outputs)
        rows = {"image_id": list(task.image_ids), "seconds": seconds,
                "missing_fraction": (~task.known).flatten(1).float().mean(1).tolist()}
        for name, metric in metrics.items():
            rows[name] = metric.compute(composite, task.images, task.known).tolist()
        record.rows, record.seconds = rows, time.perf_counter() - started
        keep = sample_positions(n, task.seed, task.settings.get("dataset_digest") or task.dataset)
        record.sample_ids = [task.image_ids[i] for i in keep]
        samples = {"ids": np.asarray(record.sample_ids), "samples": _uint8(composite[keep]),
                   "truth": _uint8(task.images[keep]), "known": task.known[keep].numpy()}
    except UserError:
        raise
    except Exception as exc:  # a failing method must not stop the whole run
        record.status, record.error, record.rows = "failed", f"{type(exc).__name__}: {exc}", None
        record.traceback, record.seconds = traceback.format_exc(), time.perf_counter() - started
        samples = None
    write_cell(Path(task.out_file), record, samples)
    return record


def _uint8(images: torch.Tensor) -> np.ndarray:
    """``N x C x H x W`` float in [0, 1] -> the same layout in uint8."""
    return to_uint8(images).transpose(0, 3, 1, 2)
