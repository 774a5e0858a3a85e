"""``benchkit score``: add metrics to a finished run from the composites it kept, running no method.

Each finished cell keeps every composite as uint8 (``outputs`` in its ``.npz``). The ground truth
and the masks are rebuilt from the run's manifest exactly as the run made them (masks are seeded by
image identity), the content digest of a folder dataset is checked against the run's, and each
metric is computed on ``outputs / 255``. Scores come from the 8-bit composites, as they would from
saved PNG files: they can differ from the run's own scores, which are computed on the float
composites, by the effect of rounding each pixel to 1/255.
"""
from __future__ import annotations

from pathlib import Path

import torch

from benchkit.errors import UserError
from benchkit.masking import make_masks
from benchkit.registry import Registry
from benchkit.results import cell_records, cell_path, read_manifest, read_samples, write_cell
from benchkit.runfolder import lock_out
from benchkit.tasks import dataset_options, load_test_split


def score(run_dir: Path, metrics: list[str], registry: Registry | None = None) -> tuple[list[str], int]:
    """Compute ``metrics`` for every finished cell of ``run_dir`` and store them as new columns.

    Returns notes (cells left out, metrics that failed) and how many (cell, metric) pairs failed.
    Every check (metric names, the data, the kept outputs) runs before the first cell is rewritten;
    each cell is rewritten atomically.
    """
    registry = registry or Registry()
    run_dir = Path(run_dir)
    records = cell_records(run_dir)  # checks the folder and the manifest
    manifest = read_manifest(run_dir) or {}
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    if not metrics:
        raise UserError("--metrics is empty: name at least one metric to add")
    scorers = {name: registry.create("metric", name, (config.get("options") or {}).get(name, {})) for name in metrics}
    notes, jobs, truths, failed = [], [], {}, 0
    for record in records:
        if not record.rows:
            notes.append(f"cell {'/'.join(record.key)} has no results (it failed): left out")
            continue
        arrays = read_samples(cell_path(run_dir, *record.key), outputs=True)
        if arrays is None or "outputs" not in arrays:
            raise UserError(f"cell {'/'.join(record.key)} kept no outputs (written by an older benchkit, or its "
                            ".npz is gone): rerun it with `benchkit run ... --force`")
        key = (record.dataset, record.mask, str(record.settings.get("dataset_options")))
        if key not in truths:
            truths[key] = _truth_and_masks(record, config, registry)
        if not set(record.rows["image_id"]) <= set(arrays["output_ids"].tolist()) or \
                max(record.rows["image_id"], default=-1) >= len(truths[key][0]):
            raise UserError(f"cell {'/'.join(record.key)} does not match its kept outputs (image ids differ): it is "
                            "corrupt; rerun it with `benchkit run ... --force`")
        jobs.append((record, arrays))
    lock = lock_out(run_dir)
    try:
        for record, arrays in jobs:
            truth, known = truths[(record.dataset, record.mask, str(record.settings.get("dataset_options")))]
            ids = arrays["output_ids"].tolist()
            order = [ids.index(i) for i in record.rows["image_id"]]  # checked before the first write
            outputs = torch.from_numpy(arrays["outputs"][order]).float().div_(255)
            rows_truth, rows_known = truth[record.rows["image_id"]], known[record.rows["image_id"]]
            for name, metric in scorers.items():
                try:
                    values = metric.compute(outputs, rows_truth, rows_known)
                    record.rows[name] = [float(v) for v in values.tolist()]
                    record.metric_errors.pop(name, None)
                except Exception as exc:  # a failing metric fails only its column
                    record.rows[name] = [float("nan")] * len(order)
                    record.metric_errors[name] = f"{type(exc).__name__}: {exc}"
                    failed += 1
                    notes.append(f"metric '{name}' failed on {'/'.join(record.key)}: {record.metric_errors[name]}")
                if name not in record.metrics:
                    record.metrics.append(name)
            write_cell(cell_path(run_dir, *record.key), record)
    finally:
        if lock is not None:
            lock.close()
    return notes, failed


def _truth_and_masks(record, config: dict, registry: Registry) -> tuple[torch.Tensor, torch.Tensor]:
    """The ground truth and the masks of a cell, rebuilt as the run made them."""
    options = dataset_options(registry, record.dataset, record.settings.get("dataset_options") or {},
                              config.get("data_dir"))
    split = load_test_split(registry, record.dataset, options, int(record.settings.get("n_images") or 0), fresh=True)
    if split.digest != record.settings.get("dataset_digest"):
        raise UserError(f"dataset '{record.dataset}' changed since the run (content digest {str(split.digest)[:12]}, "
                        f"the run's {str(record.settings.get('dataset_digest'))[:12]}): rerun the methods instead")
    generator = registry.create("mask", record.mask, record.settings.get("mask_options") or {})
    _, _, height, width = split.images.shape
    known = make_masks(generator, record.dataset, record.mask, list(range(len(split.images))), height, width,
                       int(record.settings.get("seed", 0)), split.keys)
    return split.images, known
