"""Scoring composites with metrics: one code path for the shards, the runner and ``benchkit score``.

Per-image metrics (:class:`benchkit.interfaces.Metric`) are computed batch by batch where a shard
runs; set metrics (:class:`benchkit.interfaces.SetMetric`) by the writing process, from a finished
cell's kept 8-bit composites. A metric that raises fails only its own column: its values become NaN
and the error is returned beside the others' results.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchkit.errors import UserError
from benchkit.interfaces import Metric, MetricContext

WEIGHTS_ENV = "BENCHKIT_WEIGHTS"


def weights_dir(given: str | Path | None) -> Path | None:
    """The folder searched first for pretrained weights: ``given`` (``--weights-dir``), else ``$BENCHKIT_WEIGHTS``."""
    value = given or os.environ.get(WEIGHTS_ENV)
    return Path(value) if value else None


def metric_checkpoint(metric: Metric, dataset_spec: str, dataset, models_dir: str | None) -> Path | None:
    """The checkpoint of a metric with ``needs_checkpoint``, found as a method's is (UserError when
    missing); None for the others."""
    from benchkit.checkpoints import find_checkpoint

    if not metric.needs_checkpoint:
        return None
    return find_checkpoint(metric.needs_checkpoint, dataset_spec, models_dir, metric.checkpoint_dirs,
                           dataset.models_from)


def metric_context(dataset_spec: str, device: str, image_shape, checkpoint: str | Path | None,
                   weights: str | Path | None, seed: int) -> MetricContext:
    """The context of one metric on one dataset."""
    return MetricContext(dataset=dataset_spec, device=torch.device(device), image_shape=tuple(image_shape),
                         checkpoint=Path(checkpoint) if checkpoint else None, weights_dir=weights_dir(weights),
                         seed=seed)


def check_labels(metric_name: str, metric: Metric, dataset_spec: str, labels, n: int) -> None:
    """Refuse a labelled metric on a dataset without (enough) labels, in one line."""
    if not metric.needs_labels:
        return
    if labels is None:
        raise UserError(f"metric '{metric_name}' needs class labels, and dataset '{dataset_spec}' has none: "
                        f"leave {metric_name} out of --metrics for it")
    if len(labels) < n:
        raise UserError(f"dataset '{dataset_spec}' gave {len(labels)} labels for {n} images: fix the plugin")


class FailedSetup(Metric):
    """Stands in for a metric whose ``setup`` failed where it should have worked (a bug in the
    metric, or a worker without its files): scoring it raises that error, so its column fails and
    the rest of the run stands."""

    def __init__(self, level: str, error: Exception) -> None:
        self.level, self.needs_labels = level, False
        self.error = f"setup failed: {type(error).__name__}: {error}"

    def compute(self, *batch, **labels):
        raise RuntimeError(self.error)

    reset = update = result = compute


@dataclass
class Scores:
    """What scoring a set of composites gives: per-image columns, set scores and failed metrics."""

    columns: dict[str, list[float]] = field(default_factory=dict)
    sets: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def score(metrics: dict[str, Metric], composite: torch.Tensor, truth: torch.Tensor, known: torch.Tensor,
          labels: torch.Tensor | None, batch_size: int, device: str | torch.device) -> Scores:
    """Score ``composite`` against ``truth`` with every metric, in batches of ``batch_size`` on ``device``.

    Images are ``N x C x H x W`` float32 in [0, 1] (on any device); ``labels`` ``N`` int64 or None.
    Per-image metrics give a column of ``N`` values, set metrics one value. Each batch is moved to
    ``device`` once and given to every metric that has not failed.
    """
    device = torch.device(device)
    n = len(composite)
    values = {name: [] for name, metric in metrics.items() if metric.level == "image"}
    errors: dict[str, str] = {}

    def attempt(name: str, call):
        if name in errors:
            return None
        try:
            return call()
        except Exception as exc:  # a failing metric fails only its own column
            errors[name] = f"{type(exc).__name__}: {exc}"
            return None

    for name, metric in metrics.items():
        if metric.needs_labels and labels is None:
            errors[name] = "ValueError: the metric needs labels and the dataset has none"
        elif metric.level == "set":
            attempt(name, metric.reset)
    for start in range(0, n, batch_size):
        part = slice(start, start + batch_size)
        args = (composite[part].to(device), truth[part].to(device), known[part].to(device))
        extra = {"labels": labels[part].to(device)} if labels is not None else {}
        for name, metric in metrics.items():
            given = extra if metric.needs_labels else {}
            if metric.level == "set":
                attempt(name, lambda: metric.update(*args, **given))
                continue
            batch = attempt(name, lambda: _checked(metric.compute(*args, **given), len(args[0])))
            if batch is not None:
                values[name] += batch
    out = Scores()
    for name, metric in metrics.items():
        if metric.level == "set":
            result = attempt(name, lambda: float(metric.result()))
            out.sets[name] = float("nan") if result is None else result
        else:
            out.columns[name] = [float("nan")] * n if name in errors else values[name]
    out.errors = {name: errors[name] for name in metrics if name in errors}  # in the metrics' order
    return out


def _checked(batch, n: int) -> list[float]:
    """A per-image metric's result for a batch of ``n`` images as floats; ValueError when it is not ``n`` values."""
    if not isinstance(batch, torch.Tensor) or batch.shape != (n,):
        raise ValueError(f"metric returned {getattr(batch, 'shape', type(batch))}, expected ({n},)")
    return [float(v) for v in batch.double().cpu().tolist()]


def ceilings(metrics: dict[str, Metric], images: torch.Tensor, labels: torch.Tensor | None, batch_size: int,
             device: str) -> dict[str, float]:
    """The mean score of the ground-truth images themselves for each labelled per-image metric
    (``class-acc``: the classifier's own accuracy on them), the ceiling of what a fill can reach."""
    labelled = {name: m for name, m in metrics.items() if m.needs_labels and m.level == "image"}
    if not labelled or labels is None:
        return {}
    known = torch.ones(len(images), 1, *images.shape[2:], dtype=torch.bool)
    scores = score(labelled, images, images, known, labels, batch_size, device)
    return {name: sum(values) / len(values) for name, values in scores.columns.items() if name not in scores.errors}
