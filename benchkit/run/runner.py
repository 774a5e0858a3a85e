"""Run a plan: take the results folder, start the executor, run the unfinished shards, and write.

The executor runs the shards (here, in a process pool, or on a Dask cluster) and this process alone
writes each shard's file as its result arrives, then assembles the cell when its last shard is in,
merging the metric states of its shards into its set scores (:mod:`benchkit.run.plan` plans).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from benchkit.errors import OutputClosed, WriteError
from benchkit.plugin.interfaces import Executor
from benchkit.plugin.registry import Registry
from benchkit.run.evaluation import ALL, bin_index, bin_names, compute_sets, per_bin
from benchkit.run.inputs import Inputs, release_on_worker
from benchkit.run.plan import CellPlan, RunConfig, RunPlan, metric_batch_size, plan, with_defaults
from benchkit.run.progress import Progress
from benchkit.run.reuse import reusable, shard_done
from benchkit.run.scoring import score_cell
from benchkit.run.tasks import (
    ShardTask,
    run_shard,
)
from benchkit.store.cells import (
    CellRecord,
    Shard,
    assemble_cell,
    read_cell,
    read_samples,
    shard_path,
    state_arrays,
    write_cell,
    write_manifest,
)
from benchkit.store.folder import build_manifest, merge_display, prepare_out


@dataclass
class RunOutcome(RunPlan):
    """What :func:`run` did: its plan, and the cells that ran."""

    ran: list[CellRecord] = field(default_factory=list)

    @property
    def failed(self) -> list[CellRecord]:
        """Cells whose method failed, or where a metric failed (that column only)."""
        return [r for r in self.ran if not r.ok or r.metric_errors]


def _mark_done(result: RunPlan, config: RunConfig) -> None:
    """Look up each cell's and shard's reuse key in the results folder (held under its lock)."""
    for cell in result.cells:
        raw = frozenset(name for name, m in result.metrics[cell.key[0]].items() if m.needs_raw_output)
        reuse = (not config.force and cell.out_file.exists()
                 and reusable(cell.out_file, cell.record.settings, cell.key, result.notes, raw))
        if reuse:
            result.skipped.append(cell.key)
            cell.todo = []
            if reuse == "rescore":
                result.rescore.append(cell)
        elif config.force:
            _remove(cell.out_file)
        else:
            remaining = [t for t in cell.todo if not shard_done(cell.out_file, t)]
            result.reused_shards += len(cell.todo) - len(remaining)
            cell.todo = remaining


def _remove(cell_file: Path) -> None:
    import shutil

    shutil.rmtree(cell_file.with_suffix(".shards"), ignore_errors=True)


def _shard(cell: CellPlan, result) -> Shard:
    """A worker's result as a shard of its cell."""
    task = result.task
    record = CellRecord(cell.record.dataset, cell.record.mask, cell.record.method,
                        "ok" if result.ok else "failed", settings=cell.record.settings, metrics=cell.record.metrics,
                        rows=result.rows, error=result.error, traceback=result.traceback, seconds=result.seconds,
                        sample_ids=list(task.sample_ids), metric_errors=dict(result.metric_errors))
    return Shard(record, result.samples, result.states or {}, (task.image_ids[0], task.image_ids[-1]))


def _write_shard(cell: CellPlan, result) -> None:
    """Keep a shard on disk until its cell's other shards are in (a resumed run reuses it)."""
    shard = _shard(cell, result)
    shard.record.states, arrays = state_arrays(shard.states)
    samples = None if shard.samples is None else shard.samples | arrays
    write_cell(shard_path(cell.out_file, result.task), shard.record, samples, compress=False)


def _finish(outcome: RunOutcome, cell: CellPlan, config: RunConfig, shards: list[Shard] | None = None) -> CellRecord:
    """Assemble a cell whose shards are all in (``shards``, or else from their files): its set
    metrics are computed from the merged states of its shards before the cell is written."""
    def set_scores(record: CellRecord, arrays: dict, states: dict) -> None:
        metrics = {name: m for name, m in outcome.metrics[cell.key[0]].items() if m.level == "set"}
        errors: dict[str, str] = {}
        values = compute_sets(metrics, {name: states[name] for name in metrics
                                        if name in states and name not in record.metric_errors}, errors)
        record.set_scores |= {name: values[name][ALL] if name in values and name not in errors else math.nan
                              for name in metrics}
        if record.bins and record.rows:
            index = bin_index(record.rows["missing_fraction"], record.bins)
            record.bin_counts = {name: int((index == i).sum()) for i, name in enumerate(bin_names(record.bins))}
            record.bin_scores = per_bin(values, errors)
        merged = record.metric_errors | errors
        record.metric_errors = {name: merged[name] for name in record.metrics if name in merged}  # the run's order
        outcome.notes.extend(f"metric '{name}' failed on {'/'.join(cell.key)}: {error}"
                             for name, error in errors.items())

    if shards is None:
        shards = [Shard.read(shard_path(cell.out_file, t)) for t in cell.shards]
    return assemble_cell(cell.out_file, cell.record, shards, before_write=set_scores)


def _rescore(outcome: RunOutcome, cell: CellPlan, config: RunConfig) -> None:
    """Score a finished cell that lacks some of the run's metrics from its kept 8-bit outputs."""
    spec, mask, method = cell.key
    record = read_cell(cell.out_file)
    done = (set(record.rows or {}) | set(record.set_scores)) - set(record.metric_errors or {})
    metrics = {name: m for name, m in outcome.metrics[spec].items() if name not in done}
    split = outcome.splits[spec]
    arrays = read_samples(cell.out_file, outputs=True)
    assert arrays is not None  # reuse found them readable while the folder was locked
    notes = score_cell(record, arrays, split.images, outcome.known[(spec, mask)], split.labels, metrics,
                       metric_batch_size(config), config.device)
    record.settings = cell.record.settings  # now scored with the run's metrics
    write_cell(cell.out_file, record)
    outcome.notes += notes
    outcome.notes.append(f"cell {'/'.join(cell.key)}: {', '.join(metrics)} scored from its kept 8-bit outputs "
                         f"({method} was not run again)")
    if notes:
        outcome.ran.append(record)


def _releaser(tasks: list[ShardTask], inputs: Inputs, executor: Executor):
    """A function to call with each finished shard: when a method's last shard of the run is in,
    its set-up copies are released, here (in-process, where the shards share the plan's inputs) or
    on the workers (:meth:`Executor.release`)."""
    left = Counter(task.method for task in tasks)

    def finished(task: ShardTask) -> None:
        left[task.method] -= 1
        if left[task.method] == 0:
            inputs.release_method(task.method)  # the plan set up none; the in-process shards did
            if not executor.local:
                executor.release(release_on_worker, task.method)

    return finished


def run(config: RunConfig, registry: Registry | None = None, show_progress: bool = True) -> RunOutcome:
    """Plan, take the results folder, start the executor, then run every unfinished shard; returns
    what ran, what was skipped, and notes."""
    registry = registry or Registry()
    config = with_defaults(config, registry)
    inputs = Inputs(registry)  # this process's loaded things: the plan's, then the in-process shards'
    planned = plan(config, registry, inputs)
    outcome = RunOutcome(**{f.name: getattr(planned, f.name) for f in fields(RunPlan)})
    assert outcome.executor is not None  # resolved by the plan
    executor: Executor = registry.create("executor", outcome.executor)
    executor.start()  # an unreachable scheduler fails here, before anything is written
    lock = None
    try:
        previous, lock = prepare_out(config, outcome.notes)
        _mark_done(outcome, config)  # a corrupt cell file is found here, before the first write
    except BaseException:
        if lock is not None:
            lock.close()
        executor.close()
        raise
    manifest = build_manifest(config, registry)
    manifest["dataset_digests"] = outcome.digests
    manifest["hardware"]["torch_threads"] = outcome.threads  # per worker
    manifest["display"] = merge_display(previous.get("display") if isinstance(previous, dict) else None,
                                        outcome.display)
    if isinstance(previous, dict):  # a resumed run keeps the record of earlier attempts
        history = previous.pop("history", [])
        manifest["history"] = (history if isinstance(history, list) else []) + [previous]
    bar = None
    try:
        write_manifest(config.out, manifest)
        tasks = [task for cell in outcome.cells for task in cell.todo]
        total = sum(len(t.image_ids) for t in tasks)
        bar = Progress(total, show_progress)
        by_key = {task.key: cell for cell in outcome.cells for task in cell.todo}
        remaining = {cell.key: len(cell.todo) for cell in outcome.cells}
        if executor.local:  # in this process: the plan's inputs, progress per batch, the shard's name
            def fn(task: ShardTask):
                bar.describe(task.label)
                return run_shard(task, inputs, progress=bar.update)
        else:
            fn = run_shard
        release = _releaser(tasks, inputs, executor)
        for cell in outcome.rescore:  # finished cells that lack only some metrics: no method runs again
            _rescore(outcome, cell, config)
        for cell in outcome.cells:  # shards all done by an interrupted run: only the cell is missing
            if cell.key not in outcome.skipped and not cell.todo:
                outcome.ran.append(_finish(outcome, cell, config))
        for result in executor.map(fn, tasks):
            cell = by_key[result.task.key]
            if not executor.local:
                bar.update(len(result.task.image_ids))
                bar.describe(f"done {result.task.label}")
            remaining[cell.key] -= 1
            release(result.task)
            if len(cell.shards) == 1:  # the whole cell: written at once, no shard file in between
                outcome.ran.append(_finish(outcome, cell, config, [_shard(cell, result)]))
            else:
                _write_shard(cell, result)  # this process is the only writer
                if remaining[cell.key] == 0:
                    outcome.ran.append(_finish(outcome, cell, config))
            if remaining[cell.key] == 0:
                bar.cell_done("/".join(cell.key), outcome.ran[-1].ok)
        bar.close()
        manifest["status"] = "finished"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    except BrokenPipeError as exc:  # the progress bar's reader left: stop as an interrupt does
        manifest["status"] = "interrupted"
        raise OutputClosed() from exc
    except BaseException as exc:  # never leave the manifest "running"
        manifest["status"] = "failed"
        manifest["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if bar is not None:
            bar.close()  # so that what follows (an error, "interrupted") starts on a line of its own
        executor.close()
        manifest["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            write_manifest(config.out, manifest)
        except WriteError:  # a full disk: the error that stopped the run is the one to report
            if manifest["status"] == "finished":
                raise
        finally:
            if lock is not None:
                lock.close()
    return outcome

