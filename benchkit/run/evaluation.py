"""Scoring composites with metrics: one code path for the shards, the runner and ``benchkit score``.

Every metric follows one lifecycle (:mod:`benchkit.plugin.metric`): :func:`update` runs where the images
are (a shard's worker, or the process of ``benchkit score``) and gives per-image columns and the
states of set metrics; the writing process merges a cell's shard states
(:func:`benchkit.plugin.metric.merge_states`) and
computes the set scores (:func:`compute_sets`). A metric that raises fails only its own column: its
values become NaN and the error is returned beside the others' results.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchkit.datafiles import weights_dir
from benchkit.errors import UserError
from benchkit.plugin.metric import ALL, Batch, FeatureBank, Metric, MetricContext, MetricState, SetMetric
from benchkit.run.allocator import keep_freed_memory


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


class FailedSetup(SetMetric):
    """Stands in for a metric whose ``setup`` failed where it should have worked (a bug in the
    metric, or a worker without its files): updating it raises that error, so its column fails and
    the rest of the run stands. ``level`` is the failed metric's."""

    def __init__(self, level: str, error: Exception) -> None:
        self.level, self.needs_labels = level, False  # type: ignore[misc,assignment]  # the failed metric's
        self.error = f"setup failed: {type(error).__name__}: {error}"

    def update(self, batch: Batch) -> None:
        raise RuntimeError(self.error)

    compute = update  # type: ignore[assignment]


HOLE_BINS = {"lama": 10, "comodgan": 5}  # LaMa's evaluator (bins=10); CoModGAN's -h0 ... -h4 (0.2 wide)


def bin_names(scheme: str) -> list[str]:
    """The names of a scheme's hole-area bins, as LaMa's evaluator writes them: ``0-10%`` ... ``90-100%``."""
    n = HOLE_BINS[scheme]
    return [f"{round(100 * i / n)}-{round(100 * (i + 1) / n)}%" for i in range(n)]


def bin_index(missing_fraction, scheme: str) -> np.ndarray:
    """Each image's bin, as LaMa's ``saicinpainting/evaluation/evaluator.py`` assigns it: edges
    ``linspace(0, 1, n + 1)``, ``searchsorted(edges, area, side="right") - 1``, an area of 1 in the last bin."""
    n = HOLE_BINS[scheme]
    index = np.searchsorted(np.linspace(0, 1, n + 1), np.asarray(missing_fraction, dtype=np.float64), side="right") - 1
    return np.minimum(index, n - 1)


def hole_bins(missing_fraction, scheme: str | None) -> dict[str, torch.Tensor] | None:
    """The subsets of :func:`update` for a binning scheme: every image (:data:`ALL`) and one subset
    per hole-area bin (``N`` bool each, empty bins included); None without a scheme."""
    if not scheme:
        return None
    index = bin_index(missing_fraction, scheme)
    return {ALL: torch.ones(len(index), dtype=torch.bool)} | {
        name: torch.from_numpy(index == i) for i, name in enumerate(bin_names(scheme))}


@dataclass
class Scores:
    """What scoring images gives: per-image columns, the states of set metrics per subset (computed
    by :func:`finish_sets`), and the metrics that failed (metric -> one-line error)."""

    columns: dict[str, list[float]] = field(default_factory=dict)
    states: dict[str, dict[str, MetricState]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class Scorer:
    """Scores a cell's images batch by batch as they are made (:meth:`add`), then gives the
    :class:`Scores` (:meth:`finish`): nothing but the current batch is held.

    ``n`` is the number of images to come; ``subsets`` maps names to ``n`` bool (default: every
    image, :data:`ALL`); set metrics keep a state per subset. Each batch is moved to ``device`` once
    and given to every metric that has not failed. The process's allocator keeps freed memory from
    then on (:mod:`benchkit.run.allocator`).
    """

    def __init__(self, metrics: dict[str, Metric], n: int, device: str | torch.device,
                 bank: FeatureBank | None = None, subsets: dict[str, torch.Tensor] | None = None) -> None:
        keep_freed_memory()  # each batch's large tensors (the method's too) reuse the last one's memory
        self.metrics, self.n, self.device = metrics, n, torch.device(device)
        self.bank = bank or FeatureBank()
        self.subsets = subsets if subsets is not None else {ALL: torch.ones(n, dtype=torch.bool)}
        self.scores = Scores(columns={name: [] for name, m in metrics.items() if m.level == "image"})
        self.instances = {name: {s: m.empty_copy() for s in self.subsets}  # a set metric's own state per subset
                          for name, m in metrics.items() if m.level == "set"}
        self.done = 0  # images added so far

    def _attempt(self, name: str, call, *args) -> None:
        if name in self.scores.errors:
            return
        try:
            call(*args)
        except Exception as exc:  # a failing metric fails only its own column
            self.scores.errors[name] = f"{type(exc).__name__}: {exc}"

    def add(self, composite: torch.Tensor, truth: torch.Tensor, known: torch.Tensor, labels: torch.Tensor | None,
            image_ids: tuple[int, ...], raw: torch.Tensor | None = None, texts: tuple[str, ...] | None = None) -> None:
        """Score the next batch: images ``B x C x H x W`` float32 in [0, 1], ``known`` ``B x 1 x H x W``
        bool, ``labels`` ``B`` int64 or None, ``raw`` the method's own output or None, ``texts`` the
        prompt or caption of each image or None."""
        part = slice(self.done, self.done + len(composite))
        self.done = part.stop
        to = self.device
        batch = Batch(composite.to(to), truth.to(to), known.to(to), labels.to(to) if labels is not None else None,
                      tuple(image_ids), self.bank, raw=raw.to(to) if raw is not None else None, texts=texts)
        for name, metric in self.metrics.items():
            if metric.needs_labels and labels is None:
                self.scores.errors.setdefault(name, "ValueError: the metric needs labels and the dataset has none")
            if metric.needs_texts and texts is None:
                self.scores.errors.setdefault(name, "ValueError: the metric needs a prompt or caption per image")
            if metric.level == "image":
                self._attempt(name, _score_images, metric, batch, self.scores.columns[name])
                continue
            for subset, rows in self.subsets.items():
                chosen = rows[part]
                if chosen.any():
                    self._attempt(name, self.instances[name][subset].update,
                                  batch if chosen.all() else batch.subset(chosen))

    def finish(self) -> Scores:
        """The scores of every image added; a failed metric's column is NaN and its error is kept."""
        out, errors = self.scores, self.scores.errors
        out.states = {name: {subset: m.state for subset, m in by_subset.items()}
                      for name, by_subset in self.instances.items()}
        for name, metric in self.metrics.items():
            if name in errors:
                out.columns.pop(name, None)
                out.states.pop(name, None)
                if metric.level == "image":
                    out.columns[name] = [float("nan")] * self.n
        out.errors = {name: errors[name] for name in self.metrics if name in errors}  # in the metrics' order
        return out


def update(metrics: dict[str, Metric], composite: torch.Tensor, truth: torch.Tensor, known: torch.Tensor,
           labels: torch.Tensor | None, batch_size: int, device: str | torch.device,
           image_ids: list[int] | None = None, bank: FeatureBank | None = None,
           subsets: dict[str, torch.Tensor] | None = None, raw: torch.Tensor | None = None,
           texts: list[str] | None = None) -> Scores:
    """Update every metric with ``composite`` against ``truth``, in batches of ``batch_size`` on ``device``
    (a :class:`Scorer` fed from tensors already in memory).

    Images are ``N x C x H x W`` float32 in [0, 1] (on any device); ``labels`` ``N`` int64 or None;
    ``image_ids`` the images' positions in their test split (the bank keeps the ground truth's
    features by them); ``raw`` the methods' own outputs before the composite, where a run has them.
    Per-image metrics give a column of ``N`` values; set metrics a state per
    subset of ``subsets`` (name -> ``N`` bool; default: every image, :data:`ALL`), to be merged with
    other shards' by :func:`benchkit.plugin.metric.merge_states` and computed by
    :func:`compute_sets`.
    """
    n = len(composite)
    ids = list(range(n)) if image_ids is None else list(image_ids)
    scorer = Scorer(metrics, n, device, bank, subsets)
    for start in range(0, n, batch_size):
        part = slice(start, start + batch_size)
        scorer.add(composite[part], truth[part], known[part], labels[part] if labels is not None else None,
                   tuple(ids[part]), raw[part] if raw is not None else None,
                   tuple(texts[part]) if texts is not None else None)
    return scorer.finish()


def _score_images(metric: Metric, batch: Batch, column: list[float]) -> None:
    metric.reset()  # a per-image metric's state is one batch's scores, read at once
    metric.update(batch)
    column += [float(v) for v in np.asarray(metric.compute(), dtype=np.float64).tolist()]


def compute_sets(metrics: dict[str, Metric], states: dict[str, dict[str, MetricState]],
                 errors: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each set metric's score per subset from its (merged) states; a metric that raises on the
    whole set fails its column (into ``errors``), a subset too small for it is NaN."""
    scores: dict[str, dict[str, float]] = {}
    for name, subsets in states.items():
        for subset, state in subsets.items():
            metric = metrics[name].empty_copy()
            metric.merge_state(state)
            try:
                with warnings.catch_warnings():  # a bin's few images: its table shows how few
                    if subset != ALL:
                        warnings.simplefilter("ignore")
                    value = float(metric.compute())
            except Exception as exc:
                if subset == ALL:
                    errors[name] = f"{type(exc).__name__}: {exc}"
                value = float("nan")
            scores.setdefault(name, {})[subset] = value
    return scores


def per_bin(values: dict[str, dict[str, float]], errors: dict[str, str]) -> dict[str, dict[str, float]]:
    """The values of :func:`compute_sets` for the subsets other than :data:`ALL` (the hole-area
    bins), for each set metric that has them and did not fail."""
    return {name: {subset: v for subset, v in by_subset.items() if subset != ALL}
            for name, by_subset in values.items() if name not in errors and len(by_subset) > 1}


def finish_sets(record, metrics: dict[str, Metric], states: dict[str, dict[str, MetricState]]) -> dict[str, str]:
    """The one finisher of a cell's set metrics, for the run's writer and ``benchkit score`` alike:
    each set metric of ``metrics`` computed from the cell's merged ``states`` into ``record``
    (``set_scores``, and with ``record.bins`` the counts and scores per hole-area bin). A metric
    that already failed on the cell, or fails here, scores NaN. Returns the errors of those that
    failed here."""
    sets = {name: m for name, m in metrics.items() if m.level == "set"}
    errors: dict[str, str] = {}
    values = compute_sets(sets, {name: states[name] for name in sets
                                 if name in states and name not in record.metric_errors}, errors)
    record.set_scores |= {name: values[name][ALL] if name in values and name not in errors else math.nan
                          for name in sets}
    if record.bins and record.rows:
        index = bin_index(record.rows["missing_fraction"], record.bins)
        record.bin_counts = {name: int((index == i).sum()) for i, name in enumerate(bin_names(record.bins))}
        record.bin_scores = (record.bin_scores or {}) | per_bin(values, errors)
    return errors


def ceilings(metrics: dict[str, Metric], images: torch.Tensor, labels: torch.Tensor | None, batch_size: int,
             device: str) -> dict[str, float]:
    """The mean score of the ground-truth images themselves for each labelled per-image metric
    (``class-acc``: the classifier's own accuracy on them), the ceiling of what a fill can reach."""
    labelled = {name: m for name, m in metrics.items() if m.needs_labels and m.level == "image"}
    if not labelled or labels is None:
        return {}
    known = torch.ones(len(images), 1, *images.shape[2:], dtype=torch.bool)
    scores = update(labelled, images, images, known, labels, batch_size, device)
    return {name: sum(values) / len(values) for name, values in scores.columns.items() if name not in scores.errors}


def metric_display(metric) -> dict:
    """The attributes a report needs to show a metric, stored in the results folder's manifest."""
    return {"level": metric.level, "higher_is_better": metric.higher_is_better, "unit": metric.unit,
            "digits": metric.digits, "about": dict(metric.about)}
