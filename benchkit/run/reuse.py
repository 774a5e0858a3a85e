"""What an earlier run left in a results folder that a rerun can keep: finished cells, finished shards.

Both are found by their reuse key (:mod:`benchkit.run.taskkey`): a cell stores it in its settings, a
shard's file is named by it."""
from __future__ import annotations

from pathlib import Path

from benchkit.errors import UserError
from benchkit.run.tasks import ShardTask
from benchkit.store.cells import read_cell, read_samples, shard_path


def reusable(out_file: Path, settings: dict, key: tuple, notes: list[str],
             raw_metrics: frozenset[str] = frozenset()) -> str | None:
    """``"reuse"`` when a finished cell can be kept as it is, ``"rescore"`` when it only lacks some of
    the run's metrics and kept its outputs (they are scored without running the method), else None;
    says why not in ``notes`` where it matters. A cell that lacks one of ``raw_metrics`` (metrics of
    the method's raw output, which a cell does not keep) is redone."""
    record = read_cell(out_file)
    if not record.ok:
        return None
    old = record.settings
    if old.get("task_key") != settings["task_key"]:  # options, seed, images, checkpoint or versions changed
        if old.get("dataset_digest") != settings.get("dataset_digest"):
            notes.append(f"dataset '{key[0]}' changed since cell {'/'.join(key)} was run (digest "
                         f"{str(old.get('dataset_digest'))[:12]} -> {str(settings.get('dataset_digest'))[:12]}): "
                         "redoing it")
        if old.get("benchkit") != settings.get("benchkit"):
            notes.append(f"cell {'/'.join(key)} was made by benchkit {old.get('benchkit')}: redoing it")
        changed = changed_files(old.get("input_files"), settings.get("input_files") or {})
        if changed:
            more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            notes.append(f"file {changed[0]}{more} changed since cell {'/'.join(key)} was run: redoing it")
        return None
    scored = (set(record.rows or {}) | set(record.set_scores)) - set(record.metric_errors or {})
    complete = set(settings["metrics"]) <= scored  # `benchkit score` may have added columns: more is fine
    lacking_raw = sorted((set(settings["metrics"]) - scored) & raw_metrics)
    if lacking_raw:
        notes.append(f"cell {'/'.join(key)} lacks {', '.join(lacking_raw)}, which scores the method's raw output: "
                     "running the method again")
        return None
    arrays = read_samples(out_file, outputs=not complete)  # every composite is read only to score it
    if arrays is None:
        notes.append(f"cell {'/'.join(key)} lost its pictures ({out_file.with_suffix('.npz').name} is missing or "
                     "unreadable): redoing it")
        return None
    if complete:
        return "reuse"
    return "rescore" if "outputs" in arrays else None


def changed_files(old, new: dict[str, str]) -> list[str]:
    """The files of ``new`` (path -> SHA-256) whose digest differs from ``old``'s, in order; none when
    the earlier cell recorded no files (it read none, or was written before files were recorded)."""
    if not isinstance(old, dict) or not old:
        return []
    return [path for path, digest in new.items() if path in old and old[path] != digest]


def shard_done(cell_file: Path, task: ShardTask) -> bool:
    """Whether a shard's file from an earlier, interrupted run can be kept: its file is named by the
    shard's key, so one lookup answers (a file that cannot be read is redone)."""
    path = shard_path(cell_file, task)
    if not path.is_file():
        return False
    try:
        record = read_cell(path)
    except UserError:
        return False
    return record.ok and read_samples(path, outputs=True) is not None
