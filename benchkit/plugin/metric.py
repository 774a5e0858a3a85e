"""The metric contract: one lifecycle for every metric, over declared states that merge.

Every metric, per image or per set, goes through ``reset`` -> ``update(batch)`` (any number of
times, in any worker) -> ``compute``, in the shape of torchmetrics' ``Metric`` (``add_state``,
``update``, ``compute``) and mmengine's ``BaseMetric`` (``process``, then ``compute_metrics``). What
a metric has seen lives in a :class:`MetricState`: named values declared by the class in
:attr:`Metric.states`, each merged across shards by a sum (``"sum"``) or a concatenation along the
first axis (``"cat"``). So a shard's state travels back to the one process that writes (small:
sums and covariance sums for FID, not images), the states of a cell's shards merge into the
cell's, and a state can be kept per subset of the images (hole-area bins).

* :class:`ImageMetric` has one score per image: its state is the list of those scores (``cat``);
  a subclass implements :meth:`ImageMetric.score`.
* :class:`SetMetric` scores a whole set (FID, KID): a subclass declares its states, fills them in
  :meth:`Metric.update` and reads them in :meth:`Metric.compute`.

Features that several metrics of a run need (a classifier's, Inception's) are computed once per
batch through :meth:`Batch.features`, from the explicit :class:`FeatureBank` that the scorer hands
to every metric of a run; the bank also keeps the ground truth's features across the cells of a
dataset.
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from benchkit.plugin.base import Plugin

Reduction = Literal["sum", "cat"]
ALL = "all"  # the subset of every image of a cell (the others: hole-area bins)


class MetricState:
    """The values a metric has accumulated: ``name -> array``, each declared ``"sum"`` or ``"cat"``.

    ``cat`` values are kept as a list of parts and joined when read; ``sum`` values are added as
    they come. A state is plain numpy data: it pickles, and :meth:`arrays` / :meth:`from_arrays`
    store it in an ``.npz``.
    """

    def __init__(self, reductions: dict[str, Reduction]) -> None:
        self.reductions = dict(reductions)
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in reductions}

    def add(self, name: str, value: Any) -> None:
        """Add one contribution to ``name`` (a tensor or array; ``cat`` joins along axis 0)."""
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        parts = self._parts[name]
        if self.reductions[name] == "sum" and parts:
            parts[0] = parts[0] + array
        else:
            parts.append(array)

    def get(self, name: str) -> np.ndarray | None:
        """The merged value of ``name``; None when nothing was added."""
        parts = self._parts[name]
        if not parts:
            return None
        if self.reductions[name] == "cat":
            if len(parts) > 1:
                self._parts[name] = parts = [np.concatenate(parts)]
            return parts[0]
        return parts[0]

    def merge(self, other: MetricState) -> MetricState:
        """Add ``other``'s contributions (another shard's) to this state; returns self."""
        for name in self.reductions:
            value = other.get(name)
            if value is not None:
                self.add(name, value)
        return self

    def arrays(self) -> dict[str, np.ndarray]:
        """``name -> merged array`` for storage (names with nothing added are left out)."""
        return {name: value for name in self.reductions if (value := self.get(name)) is not None}

    @classmethod
    def from_arrays(cls, reductions: dict[str, Reduction], arrays: dict[str, np.ndarray]) -> MetricState:
        state = cls(reductions)
        for name, value in arrays.items():
            if name in reductions:
                state.add(name, value)
        return state


def merge_states(parts) -> dict[str, dict[str, MetricState]]:
    """The states of a cell from its shards' (each ``metric -> subset -> MetricState``), merged in order."""
    merged: dict[str, dict[str, MetricState]] = {}
    for states in parts:
        for name, subsets in states.items():
            for subset, state in subsets.items():
                merged.setdefault(name, {}).setdefault(subset, MetricState(state.reductions)).merge(state)
    return merged


@dataclass
class MetricContext:
    """What a metric's :meth:`Metric.setup` sees before it scores the cells of a dataset.

    Attributes
    ----------
    dataset : str
        The dataset whose inpainted images the metric is about to score.
    device : torch.device
        Where the tensors given to the metric live, and where it should compute.
    image_shape : tuple of int
        ``(C, H, W)`` of the images.
    checkpoint : pathlib.Path or None
        The ``.safetensors`` model trained for this dataset, given to metrics whose
        ``needs_checkpoint`` names a model kind (found as a method's checkpoint is).
    weights_dir : pathlib.Path or None
        Folder searched first for pretrained weights files (``--weights-dir``, else ``$BENCHKIT_WEIGHTS``).
    seed : int
        Seed of the run, for metrics that draw random numbers (KID's subsets).
    """

    dataset: str
    device: torch.device
    image_shape: tuple[int, int, int]
    checkpoint: Path | None = None
    weights_dir: Path | None = None
    seed: int = 0


class FeatureBank:
    """Features shared by the metrics of a run, handed to them explicitly in every :class:`Batch`.

    Within one batch, each network's features of the composites are computed once for all metrics
    (class-acc, fid-fmnist and kid-fmnist share the classifier's). The ground truth's features are
    kept by image id for the dataset the bank serves, so they are computed once for all the masks
    and methods of a run.
    """

    def __init__(self) -> None:
        self._truth: dict[tuple, torch.Tensor] = {}  # (source, image id) -> that image's features

    def truth(self, source: tuple, image_ids: tuple[int, ...], images: torch.Tensor,
              compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Features of ground-truth ``images`` (ids ``image_ids``), computed only for those not seen before."""
        missing = [i for i, image_id in enumerate(image_ids) if (source, image_id) not in self._truth]
        if missing:
            with torch.no_grad():
                computed = compute(images[missing])
            for row, i in enumerate(missing):
                self._truth[(source, image_ids[i])] = computed[row]
        return torch.stack([self._truth[(source, image_id)] for image_id in image_ids])


@dataclass
class Batch:
    """One batch of a cell, as every metric's :meth:`Metric.update` receives it.

    Attributes
    ----------
    prediction, target : torch.Tensor
        ``N x C x H x W`` float32 in [0, 1] (data range 1): the composites and the ground truth.
    known : torch.Tensor
        ``N x 1 x H x W`` bool, True where observed.
    labels : torch.Tensor or None
        ``N`` int64 class indices, where the dataset has them.
    image_ids : tuple of int
        The images' positions in the dataset's test split.
    raw : torch.Tensor or None
        The method's own output before the composite (its known pixels included), ``N x C x H x W``;
        None when the images are scored later from kept composites (``benchkit score``).
    texts : tuple of str or None
        The text each image is scored against: the method's prompt where it takes text, else the
        dataset's caption; None when there is neither.
    """

    prediction: torch.Tensor
    target: torch.Tensor
    known: torch.Tensor
    labels: torch.Tensor | None = None
    image_ids: tuple[int, ...] = ()
    bank: FeatureBank = field(default_factory=FeatureBank)
    raw: torch.Tensor | None = None
    texts: tuple[str, ...] | None = None
    _memo: dict = field(default_factory=dict, repr=False)
    _parent: tuple[Batch, torch.Tensor] | None = field(default=None, repr=False)  # (whole batch, rows) of a subset

    def __len__(self) -> int:
        return len(self.prediction)

    def features(self, source: tuple, which: Literal["prediction", "target"],
                 compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``compute(images)`` (no gradients) of the composites or the ground truth, once per batch
        for every metric that names the same ``source`` (the network's identity)."""
        key = (source, which)
        if key not in self._memo and self._parent is not None:  # a subset: the whole batch's features, selected
            whole, rows = self._parent
            self._memo[key] = whole.features(source, which, compute)[rows]
        if key not in self._memo:
            if which == "target" and self.image_ids:
                self._memo[key] = self.bank.truth(source, self.image_ids, self.target, compute)
            else:
                with torch.no_grad():
                    self._memo[key] = compute(getattr(self, which))
        return self._memo[key]

    def subset(self, rows: torch.Tensor) -> Batch:
        """The images of this batch selected by a bool tensor; features come from the whole batch's."""
        index = rows.to(self.prediction.device).nonzero().flatten()
        return Batch(self.prediction[index], self.target[index], self.known[index],
                     None if self.labels is None else self.labels[index],
                     tuple(self.image_ids[i] for i in index.tolist()) if self.image_ids else (), self.bank,
                     None if self.raw is None else self.raw[index],
                     None if self.texts is None else tuple(self.texts[i] for i in index.tolist()),
                     _parent=(self, index))


class Metric(Plugin, ABC):
    """A score of composited predictions against the ground truth, per image or per set.

    Lifecycle: the runner creates the metric with its options and calls :meth:`setup` once per
    dataset (load networks and weights there; raise ``benchkit.errors.UserError`` when something
    is missing, which stops the run before anything is written). Then, per cell and subset of
    images: :meth:`reset`, :meth:`update` with every batch where the images are (a worker), the
    states of the shards merged in the writing process, and :meth:`compute` on the merged state.

    ``states`` declares what :meth:`update` accumulates: ``name -> "sum" | "cat"``. ``min_size`` is
    the smallest image side (pixels) the metric can score. ``higher_is_better``, ``unit`` (shown in
    table titles, e.g. "dB") and ``digits`` (decimals shown) drive every table, bold cell and
    report: presentation never looks at a metric's name. ``needs_labels``: batches carry ``labels``
    and the metric runs only on datasets that have them. ``needs_checkpoint``/``checkpoint_dirs``:
    as for methods. ``needs_raw_output``: the metric reads ``batch.raw``, the method's output before
    the composite, which only a run has: ``benchkit score`` refuses it, and a run that adds it to a
    finished cell runs the method again. ``needs_texts``: the metric reads ``batch.texts`` (each
    image's prompt or caption); a run without texts for a cell stops before anything is written.
    A metric that raises fails only its own column; the method's results stand.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    level: ClassVar[Literal["image", "set"]] = "set"
    states: ClassVar[dict[str, Reduction]] = {}
    higher_is_better: ClassVar[bool] = True
    min_size: ClassVar[int] = 1
    unit: ClassVar[str] = ""
    digits: ClassVar[int] = 4
    needs_labels: ClassVar[bool] = False
    needs_checkpoint: ClassVar[str | None] = None
    checkpoint_dirs: ClassVar[tuple[Path, ...]] = ()
    needs_raw_output: ClassVar[bool] = False
    needs_texts: ClassVar[bool] = False
    about: ClassVar[dict[str, str]] = {}  # what a score is (variant, resize, features): kept with the run's scores

    state: MetricState

    def setup(self, context: MetricContext) -> None:
        """Prepare for scoring a dataset's images (networks, weights, device). Default: nothing."""

    def reset(self) -> None:
        """Start an empty state."""
        self.state = MetricState(self.states)

    def merge_state(self, state: MetricState) -> None:
        """Add another process's or shard's state of this metric to its own (torchmetrics'
        ``merge_state``): how the writer joins a cell's shards before :meth:`compute`."""
        if not hasattr(self, "state"):
            self.reset()
        self.state.merge(state)

    def empty_copy(self) -> Metric:
        """This set-up metric with an empty state of its own (networks and options shared): one per
        subset of images (hole-area bins) and per cell, so no caller ever swaps a state into a metric."""
        twin = copy.copy(self)
        twin.reset()
        return twin

    def add(self, name: str, value: Any) -> None:
        """Accumulate ``value`` into the declared state ``name`` (call it from :meth:`update`)."""
        if not hasattr(self, "state"):
            self.reset()
        self.state.add(name, value)

    @abstractmethod
    def update(self, batch: Batch) -> None:
        """Take one batch into the state (through :meth:`add`)."""

    @abstractmethod
    def compute(self) -> Any:
        """The score of everything in the state: a float for a set metric, one float per image
        (an ``N`` array) for a per-image metric."""


class ImageMetric(Metric):
    """A metric with one score per image; its state is those scores, in image order (``cat``).

    A subclass implements :meth:`score` (the composites, the ground truth and the masks; a metric
    with ``needs_labels`` takes ``labels=`` too) or, where it needs more of the batch (features
    shared with other metrics, the method's raw output), :meth:`score_batch`; :meth:`update` calls
    ``score_batch``, which calls ``score`` unless overridden. A class that implements neither is
    refused when it is defined.
    """

    level = "image"
    states = {"scores": "cat"}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.score is ImageMetric.score and cls.score_batch is ImageMetric.score_batch:
            raise TypeError(f"image metric {cls.__name__} must implement score() or score_batch()")

    def score(self, prediction: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Score each image of a batch.

        Parameters
        ----------
        prediction, target : torch.Tensor
            ``N x C x H x W`` float32 in [0, 1] (data range 1).
        known : torch.Tensor
            ``N x 1 x H x W`` bool mask, True where observed.

        Returns
        -------
        torch.Tensor
            ``N`` scores (float64 preferred).
        """
        raise TypeError(f"{type(self).__name__} scores through score_batch()")

    def score_batch(self, batch: Batch) -> torch.Tensor:
        """``N`` scores of a :class:`Batch`; by default :meth:`score` of its images."""
        extra = {"labels": batch.labels} if self.needs_labels else {}
        return self.score(batch.prediction, batch.target, batch.known, **extra)

    def update(self, batch: Batch) -> None:
        scores = self.score_batch(batch)
        if not isinstance(scores, torch.Tensor) or scores.shape != (len(batch),):
            raise ValueError(f"metric returned {getattr(scores, 'shape', type(scores))}, expected ({len(batch)},)")
        self.add("scores", scores.double())

    def compute(self) -> np.ndarray:
        scores = self.state.get("scores")
        return np.zeros(0) if scores is None else scores


class SetMetric(Metric):
    """A score of a whole set of images (a cell, or a subset of it), such as FID: declare
    :attr:`Metric.states`, fill them in :meth:`Metric.update`, read them in :meth:`Metric.compute`."""

    level = "set"
