"""What a process loads for a run, owned by one object with a lifetime: :class:`Inputs`.

An :class:`Inputs` holds the dataset splits, the masks, the mask generators, the set-up methods,
the set-up metrics and the feature banks of the runs it serves, each keyed by what it depends on,
so that a process that gets many shards of one cell loads, masks and sets up once. It is passed
explicitly: the runner makes one and hands it to :func:`~benchkit.run.plan.plan` and, in-process,
to every shard; ``benchkit score`` and ``benchkit export`` make their own.

Set-up methods hold the big tensors (a network, a training split), so they have a lifetime: the
runner releases a method when its last shard is done (:meth:`Inputs.release_method`; on a Dask
cluster through :meth:`benchkit.plugin.interfaces.Executor.release`), and beyond
:attr:`Inputs.method_budget` bytes the least recently used method is dropped, so a long-lived
worker that serves many runs keeps its memory bounded whatever the runs ask of it.

A worker process (a process pool's, a Dask worker) keeps its own: :func:`worker_inputs`, the one
per-process instance, made on the worker's first shard.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchkit.errors import UserError
from benchkit.masking import make_masks
from benchkit.plugin.interfaces import Dataset, Method, MethodContext
from benchkit.plugin.metric import FeatureBank
from benchkit.plugin.spec import Spec
from benchkit.run.evaluation import FailedSetup

METHOD_BUDGET = 4 << 30  # bytes of tensors that set-up methods may hold in one process (least recently used go)


@dataclass(frozen=True)
class LoadedSplit:
    """A dataset's test images as a run uses them: the first ``n_images`` (0: all), their content
    keys (None for named datasets) and the digest of those keys, which identifies a folder's content."""

    dataset: Dataset
    images: torch.Tensor
    keys: list[str] | None
    digest: str | None
    labels: torch.Tensor | None = None  # N int64 class indices, where the dataset has them
    captions: list[str] | None = None  # a caption per image, where the dataset has them (in the digest)


def content_digest(keys: list[str] | None, captions: list[str] | None = None) -> str | None:
    """SHA-256 of a dataset's image keys in order, and of its captions where it has them (None when
    the dataset gives no keys)."""
    if keys is None:
        return None
    text = "".join(keys) if captions is None else "".join(keys) + json.dumps(captions)
    return hashlib.sha256(text.encode()).hexdigest()


def tensor_bytes(obj: Any, seen: set[int] | None = None, depth: int = 3) -> int:
    """Bytes of the tensors an object holds: its modules' parameters and buffers, and tensors in its
    attributes, lists and dicts (``depth`` levels down; each storage counted once)."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        key = obj.untyped_storage().data_ptr()
        if key in seen:
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, torch.nn.Module):
        return sum(tensor_bytes(t, seen, 0) for t in [*obj.parameters(), *obj.buffers()])
    if depth <= 0:
        return 0
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen, depth - 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v, seen, depth - 1) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(tensor_bytes(v, seen, depth - 1) for v in vars(obj).values())
    return 0


class Inputs:
    """The one owner of a process's loaded splits, masks, set-up methods and metrics, and feature
    banks (see the module docstring). ``setups`` counts method set-ups, for tests and logs."""

    def __init__(self, registry, method_budget: int = METHOD_BUDGET) -> None:
        self.registry = registry
        self.method_budget = method_budget
        self.setups = 0
        self._splits: dict[tuple, LoadedSplit] = {}
        self._masks: dict[tuple, torch.Tensor] = {}
        self._generators: dict[tuple, Any] = {}
        self._methods: OrderedDict[tuple, tuple[str, Method, int]] = OrderedDict()  # key -> (spec, method, bytes)
        self._lock = threading.Lock()  # a Dask worker releases from another thread than its tasks'
        self._metrics: dict[tuple, Any] = {}
        self._banks: dict[tuple, FeatureBank] = {}

    def split(self, spec: str | Spec, data_dir: str | None, n_images: int, fresh: bool = False) -> LoadedSplit:
        """The test images a run of dataset ``spec`` uses, loaded once (again with ``fresh``)."""
        key = (str(spec), data_dir, n_images)
        if fresh or key not in self._splits:
            dataset = create_dataset(self.registry, spec, data_dir)
            images = dataset.images("test", limit=n_images or None)
            keys = dataset.image_keys("test", limit=n_images or None)
            labels = dataset.labels("test", limit=n_images or None)
            captions = dataset.captions("test", limit=n_images or None)
            self._splits[key] = LoadedSplit(dataset, images, keys, content_digest(keys, captions), labels, captions)
        return self._splits[key]

    def generator(self, mask: str | Spec, files: str | None = None):
        """The mask generator of spec ``mask``; ``files`` keys the files it reads."""
        key = (str(mask), files)
        if key not in self._generators:
            self._generators[key] = self.registry.create("mask", mask)
        return self._generators[key]

    def masks(self, dataset: str, mask: str | Spec, seed: int, split: LoadedSplit, n_images: int,
              ids: list[int] | None = None, files: str | None = None, generator=None) -> torch.Tensor:
        """The masks of images ``ids`` of a loaded split (all if None), made once. The plan makes
        every mask of the split; a worker elsewhere makes only its shards' masks, once for all methods."""
        key = ("masks", dataset, str(mask), seed, split.digest, n_images, files)
        if ids is not None and key in self._masks:
            return self._masks[key][ids]
        ids = list(range(len(split.images))) if ids is None else ids
        whole = len(ids) == len(split.images)
        part = key if whole else (*key, tuple(ids))
        if part not in self._masks:
            keys = [split.keys[i] for i in ids] if split.keys is not None else None
            _, _, height, width = split.images.shape
            self._masks[part] = make_masks(generator or self.generator(mask, files), dataset, str(mask), ids, height,
                                           width, seed, keys)
        return self._masks[part]

    def method(self, task, image_shape, train_split: Callable[[], torch.Tensor],
               captions: list[str] | None = None) -> Method:
        """The method of a shard task, set up once for what it depends on; ``train_split()`` gives
        the training images to a method that needs them. Beyond the budget, the least recently
        used other methods are released."""
        key = (str(task.method), str(task.dataset), task.data_dir, task.checkpoint, task.device, tuple(image_shape),
               task.seed, task.digest)
        with self._lock:
            if key in self._methods:
                self._methods.move_to_end(key)
                return self._methods[key][1]
        method = self.registry.create("method", task.method)
        context = MethodContext(dataset=str(task.dataset), device=torch.device(task.device),
                                image_shape=tuple(image_shape),
                                checkpoint=Path(task.checkpoint) if task.checkpoint else None, seed=task.seed,
                                captions=tuple(captions) if captions is not None else None)
        if method.needs_train_data:
            context.train_images = train_split()
        method.setup(context)
        with self._lock:
            self.setups += 1
            self._methods[key] = (str(task.method), method, tensor_bytes(method))
            while len(self._methods) > 1 and sum(size for _, _, size in self._methods.values()) > self.method_budget:
                self._methods.popitem(last=False)  # the least recently used, never the one just set up
        return method

    def release_method(self, spec: str | Spec) -> None:
        """Drop every set-up of the method of spec ``spec`` (its shards here are done)."""
        with self._lock:
            for key in [k for k, (s, _, _) in self._methods.items() if s == str(spec)]:
                del self._methods[key]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def methods_held(self) -> list[str]:
        """Canonical specs of the methods set up here now, least recently used first."""
        with self._lock:
            return [spec for spec, _, _ in self._methods.values()]

    def metric(self, name: str | Spec, context) -> Any:
        """The metric of canonical spec ``name`` set up for ``context``, once. A ``setup`` that raises
        a UserError (missing weights, a checkpoint that does not fit) raises it: bad input. Any other
        exception is a bug in the metric: a :class:`FailedSetup` stands in for it, so only its
        column fails."""
        key = (str(name), context.dataset, str(context.checkpoint), str(context.device), tuple(context.image_shape),
               str(context.weights_dir), context.seed)
        if key not in self._metrics:
            metric = self.registry.create("metric", name)
            try:
                metric.setup(context)
            except UserError:
                raise
            except Exception as exc:
                metric = FailedSetup(metric.level, exc)
            self._metrics[key] = metric
        return self._metrics[key]

    def bank(self, dataset: str, digest: str | None, device: str) -> FeatureBank:
        """The feature bank of a dataset's ground truth on ``device``, shared by all its cells here."""
        return self._banks.setdefault((dataset, digest, device), FeatureBank())

    def metric_level(self, name: str | Spec) -> str:
        spec = name if isinstance(name, Spec) else Spec.parse(name, "metric")
        return self.registry.get("metric", spec.name).cls.level


def create_dataset(registry, spec: str | Spec, data_dir: str | None):
    """The dataset of a canonical spec, looking in ``data_dir`` first where the dataset takes one
    (a third party's need not). ``data_dir`` says where files are, not which: it is no option."""
    extra = {"data_dir": data_dir} if data_dir and registry.accepts("dataset", spec, "data_dir") else {}
    return registry.create("dataset", spec, extra)


_WORKER: dict[Any, Inputs] = {}  # this worker process's own Inputs, by its registry's setting


def worker_inputs(block_external: bool | None) -> Inputs:
    """This process's own :class:`Inputs` (a worker's: made on its first shard, kept for the next)."""
    if block_external not in _WORKER:
        from benchkit.plugin.registry import Registry

        _WORKER[block_external] = Inputs(Registry(block_external=block_external))
    return _WORKER[block_external]


def release_on_worker(spec: str | Spec) -> list[str]:
    """Release method ``spec`` from this worker's Inputs (sent to every worker by an executor);
    returns the methods still held, for logs and tests."""
    held: list[str] = []
    for inputs in _WORKER.values():
        inputs.release_method(spec)
        held += inputs.methods_held()
    return held
