"""``benchkit score``: add metrics to a finished run from the composites it kept, running no method.

Each finished cell keeps every composite as uint8 (``outputs`` in its ``.npz``). The ground truth
and the masks are rebuilt from the run's manifest exactly as the run made them (masks are seeded by
image identity), the content digest of a folder dataset is checked against the run's, and each
metric is computed on ``outputs / 255``. Scores come from the 8-bit composites, as they would from
saved PNG files: they can differ from the run's own scores, which are computed on the float
composites, by the effect of rounding each pixel to 1/255.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from benchkit.errors import UserError
from benchkit.masking import make_masks
from benchkit.plugin.metric import FeatureBank
from benchkit.plugin.registry import Registry
from benchkit.plugin.spec import Spec, unique
from benchkit.run.defaults import METRIC_BATCH_SIZE
from benchkit.run.evaluation import finish_sets, hole_bins, metric_display, update
from benchkit.run.inputs import Inputs, LoadedSplit
from benchkit.run.tasks import prepare_metrics
from benchkit.store.cells import CellRecord, cell_path, read_manifest, read_samples, write_cell, write_manifest
from benchkit.store.folder import lock_out, merge_display
from benchkit.store.results import cell_records


def score(run_dir: Path, metrics: list[str], registry: Registry | None = None, device: str = "cpu",
          weights_dir: str | None = None, models_dir: str | None = None,
          batch_size: int = METRIC_BATCH_SIZE) -> tuple[list[str], int, list[str]]:
    """Compute ``metrics`` (per image or per set) for every finished cell of ``run_dir``; store them.

    Returns notes (cells left out, metrics that failed), how many (cell, metric) pairs failed, and
    the metrics' canonical specs (their column names).
    Every check (metric names, the data, labels, checkpoints and weights, the kept outputs) runs
    before the first cell is rewritten; each cell is rewritten atomically.
    """
    registry = registry or Registry()
    run_dir = Path(run_dir)
    records = cell_records(run_dir)  # checks the folder and the manifest
    notes: list[str] = []
    names = _metric_names(metrics, registry, notes)
    jobs = _Jobs(run_dir, Inputs(registry), names, device, models_dir, weights_dir)
    for record in records:
        jobs.add(record, notes)
    lock = lock_out(run_dir)
    try:
        failed = _score_jobs(run_dir, jobs, batch_size, device, notes)
    finally:
        if lock is not None:
            lock.close()
    return notes, failed, names


def _metric_names(metrics: list[str], registry: Registry, notes: list[str]) -> list[str]:
    """The canonical specs of the metrics to add; raw-output metrics are refused, before any write."""
    if not metrics:
        raise UserError("--metrics is empty: name at least one metric to add")
    names = [s.canonical for s in unique([Spec.parse(m, "metric").resolve(registry) for m in metrics],
                                         "--metrics", notes)]  # an unknown name: one line with "did you mean"
    raw = [name for name in names if registry.get("metric", Spec.parse(name, "metric").name).cls.needs_raw_output]
    if raw:
        raise UserError(f"metric '{raw[0]}' scores each method's raw output before the composite, which a run does "
                        f"not keep: add it with `benchkit run` and the run's flags plus --metrics ...,{raw[0]} "
                        "(its cells run their methods again)")
    return names


def _check_texts(record: CellRecord, metrics: dict, n: int) -> None:
    """Before any write: a cell scored by a text metric kept the texts it was run with."""
    texts = record.settings.get("texts")
    needing = [name for name, metric in metrics.items() if metric.needs_texts]
    if needing and not (isinstance(texts, list) and len(texts) >= n):
        raise UserError(f"metric '{needing[0]}' needs a text per image, and cell {'/'.join(record.key)} was run "
                        "without prompts or captions: add captions.csv to the folder and rerun the cell with "
                        "`benchkit run`")


class _Jobs:
    """The cells to score, each with its kept outputs, its rebuilt inputs and its set-up metrics:
    gathered and checked before the first write."""

    def __init__(self, run_dir: Path, loaded: Inputs, names: list[str], device: str, models_dir, weights_dir) -> None:
        manifest = read_manifest(run_dir) or {}
        self.run_dir, self.manifest, self.loaded, self.names = run_dir, manifest, loaded, names
        self.config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
        self.device, self.models_dir, self.weights_dir = device, models_dir, weights_dir
        self.jobs: list[tuple] = []
        self.inputs: dict[tuple, tuple] = {}
        self.splits: dict[tuple, LoadedSplit] = {}
        self.prepared: dict[tuple, dict] = {}

    def add(self, record: CellRecord, notes: list[str]) -> None:
        if not record.rows:
            notes.append(f"cell {'/'.join(record.key)} has no results (it failed): left out")
            return
        arrays = read_samples(cell_path(self.run_dir, *record.key), outputs=True)
        if arrays is None or "outputs" not in arrays:
            raise UserError(f"cell {'/'.join(record.key)} kept no outputs (written by an older benchkit, or its "
                            ".npz is gone): rerun it with `benchkit run ... --force`")
        key = _inputs_key(record)
        if key not in self.inputs:
            self.inputs[key] = _cell_inputs(record, self.config or {}, self.loaded, self.splits)
        split, _ = self.inputs[key]
        if not set(record.rows["image_id"]) <= set(arrays["output_ids"].tolist()) or \
                max(record.rows["image_id"], default=-1) >= len(split.images):
            raise UserError(f"cell {'/'.join(record.key)} does not match its kept outputs (image ids differ): it is "
                            "corrupt; rerun it with `benchkit run ... --force`")
        seed = int(record.settings.get("seed", 0))
        metrics_key = (record.dataset, key[2], seed)  # all the masks of a dataset
        if metrics_key not in self.prepared:
            self.prepared[metrics_key], _ = prepare_metrics(self.loaded, self.names, record.dataset, split, self.device,
                                                            self.models_dir, self.weights_dir, seed)
        _check_texts(record, self.prepared[metrics_key], len(split.images))
        self.jobs.append((record, arrays, key, self.prepared[metrics_key]))


def _score_jobs(run_dir: Path, jobs: _Jobs, batch_size: int, device: str, notes: list[str]) -> int:
    """Score and rewrite every gathered cell (under the folder's lock); returns how many (cell,
    metric) pairs failed. The manifest learns the new metrics' display attributes."""
    failed = 0
    for record, arrays, key, all_metrics in jobs.jobs:
        split, known = jobs.inputs[key]
        cell_metrics = all_metrics
        if not record.ok:  # a cell that failed in part: its images are not the whole set
            cell_metrics = {name: m for name, m in all_metrics.items() if m.level == "image"}
            if len(cell_metrics) < len(all_metrics):
                notes.append(f"cell {'/'.join(record.key)} failed in part: set metrics left out")
        bank = jobs.loaded.bank(key[0], split.digest, device)  # ground-truth features shared by a dataset's cells
        cell_notes = score_cell(record, arrays, split.images, known, split.labels, cell_metrics, batch_size,
                                device, bank)
        failed += len(cell_notes)
        notes += cell_notes
        write_cell(cell_path(run_dir, *record.key), record)
    manifest = jobs.manifest
    if isinstance(manifest.get("display"), dict) and jobs.prepared:  # the report shows the new metrics as the run's
        added = {name: metric_display(m) for name, m in next(iter(jobs.prepared.values())).items()}
        manifest["display"] = merge_display(manifest["display"], {"metrics": added})
        write_manifest(run_dir, manifest)
    return failed


def score_cell(record: CellRecord, arrays: dict, truth: torch.Tensor, known: torch.Tensor,
               labels: torch.Tensor | None, metrics: dict, batch_size: int, device: str,
               bank: FeatureBank | None = None) -> list[str]:
    """Score a finished cell's kept 8-bit composites (``arrays["outputs"]``) with set-up ``metrics``
    and store the results in ``record`` (columns, set scores, errors). Returns a note per failed metric.

    ``truth``, ``known`` and ``labels`` hold the whole test split, indexed by the cell's image ids.
    """
    assert record.rows is not None  # a finished cell
    ids = arrays["output_ids"].tolist()
    rows = record.rows["image_id"]
    order = [ids.index(i) for i in rows]
    outputs = torch.from_numpy(arrays["outputs"][order]).float().div_(255)
    subsets = hole_bins(record.rows["missing_fraction"], record.bins) if record.bins else None
    texts = record.settings.get("texts")  # the prompts or captions the run scored against, by image id
    scores = update(metrics, outputs, truth[rows], known[rows], labels[rows] if labels is not None else None,
                    batch_size, device, rows, bank, subsets, texts=[texts[i] for i in rows] if texts else None)
    stored = (set(record.rows) | set(record.set_scores)) - set(record.metric_errors)
    before = dict(record.set_scores), {k: dict(v) for k, v in (record.bin_scores or {}).items()}
    for name in metrics:
        record.metric_errors.pop(name, None)
        if name not in record.metrics:
            record.metrics.append(name)
    errors = scores.errors | finish_sets(record, {n: m for n, m in metrics.items() if n not in scores.errors},
                                         scores.states)
    kept = [name for name in errors if name in stored]  # a failure never wipes values a cell holds
    record.rows |= {name: v for name, v in scores.columns.items() if name not in kept}
    record.set_scores |= {name: before[0][name] for name in kept if name in before[0]}
    record.set_scores |= {name: math.nan for name in errors if name not in kept and metrics[name].level == "set"}
    record.bin_scores = (record.bin_scores or {}) | {name: before[1][name] for name in kept if name in before[1]}
    record.metric_errors |= {name: e for name, e in errors.items() if name not in kept}
    return [f"metric '{name}' failed on {'/'.join(record.key)}: {error}"
            + (" (its stored values are kept)" if name in kept else "") for name, error in errors.items()]


def _inputs_key(record: CellRecord) -> tuple:
    return record.dataset, record.mask, str(record.settings.get("dataset_options"))


def _spec(registry: Registry, kind: str, text: str, options: dict | None) -> str:
    """The canonical spec of a cell's dataset or mask. Cells written before specs carried their
    options keep them in their settings (``dataset_options``, ``mask_options``)."""
    options = {k: v for k, v in (options or {}).items() if k != "data_dir"}
    return Spec.parse(text, kind).resolve(registry, options).canonical


def _cell_inputs(record: CellRecord, config: dict, loaded: Inputs, splits: dict):
    """The test split (images, labels) and the masks of a cell, rebuilt as the run made them (masks
    are seeded by image identity). ``splits`` keeps each split read (once per ``score``, from disk)."""
    registry = loaded.registry
    dataset = _spec(registry, "dataset", record.dataset, record.settings.get("dataset_options"))
    n_images = int(record.settings.get("n_images") or 0)
    key = (dataset, n_images)
    if key not in splits:
        splits[key] = loaded.split(dataset, config.get("data_dir"), n_images)
    split = splits[key]
    if split.digest != record.settings.get("dataset_digest"):
        raise UserError(f"dataset '{record.dataset}' changed since the run (content digest {str(split.digest)[:12]}, "
                        f"the run's {str(record.settings.get('dataset_digest'))[:12]}): rerun the methods instead")
    generator = registry.create("mask", _spec(registry, "mask", record.mask, record.settings.get("mask_options")))
    _, _, height, width = split.images.shape
    known = make_masks(generator, record.dataset, record.mask, list(range(len(split.images))), height, width,
                       int(record.settings.get("seed", 0)), split.keys)
    return split, known
