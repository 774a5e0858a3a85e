"""Run a plan: take the results folder, start the executor, run the unfinished shards, and write.

The path of a run: :func:`~benchkit.run.resolve.resolve` (names and options), :func:`~benchkit.run.plan.plan`
(data, masks, metrics, cells and shards, as frozen data), then here: the folder is taken and what it
already holds is looked up by task key (:class:`Progress` of this run, kept apart from the plan),
the executor runs the shards still to run, and this process alone writes each shard's file as its
result arrives, then assembles the cell when its last shard is in, computing its set metrics from
the merged states of its shards (:func:`benchkit.run.evaluation.finish_sets`).
"""
from __future__ import annotations

import copy
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from benchkit.errors import OutputClosed, WriteError
from benchkit.plugin.interfaces import Executor
from benchkit.plugin.registry import Registry
from benchkit.run.evaluation import finish_sets
from benchkit.run.inputs import Inputs, release_on_worker
from benchkit.run.plan import CellPlan, RunPlan, plan
from benchkit.run.progress import Progress as ProgressBar
from benchkit.run.resolve import RunConfig, metric_batch_size, resolve
from benchkit.run.reuse import reusable, shard_done
from benchkit.run.scoring import score_cell
from benchkit.run.tasks import ShardTask, run_shard
from benchkit.store.cells import (
    CellRecord,
    Shard,
    join_shards,
    read_cell,
    read_samples,
    shard_path,
    state_arrays,
    write_assembled,
    write_cell,
    write_manifest,
)
from benchkit.store.folder import build_manifest, merge_display, prepare_out

__all__ = ["RunConfig", "RunOutcome", "metric_batch_size", "plan", "resolve", "run"]


@dataclass
class RunOutcome:
    """What :func:`run` did: its plan (unchanged), the cells the folder already had (``skipped``;
    ``rescore``: finished but lacking some metrics), the finished shards of unfinished cells it kept,
    the shards it ran (``todo``), the cells it wrote (``ran``), and notes."""

    plan: RunPlan
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    rescore: list[CellPlan] = field(default_factory=list)
    reused_shards: int = 0
    todo: dict[tuple[str, str, str], list[ShardTask]] = field(default_factory=dict)
    ran: list[CellRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[CellRecord]:
        """Cells whose method failed, or where a metric failed (that column only)."""
        return [r for r in self.ran if not r.ok or r.metric_errors]


def _look_up(outcome: RunOutcome, config: RunConfig) -> None:
    """Look up each cell's and shard's reuse key in the results folder (held under its lock)."""
    for cell in outcome.plan.cells:
        raw = frozenset(name for name, m in outcome.plan.metrics[cell.key[0]].items() if m.needs_raw_output)
        reuse = (not config.force and cell.out_file.exists()
                 and reusable(cell.out_file, cell.record.settings, cell.key, outcome.notes, raw))
        if reuse:
            outcome.skipped.append(cell.key)
            outcome.todo[cell.key] = []
            if reuse == "rescore":
                outcome.rescore.append(cell)
            continue
        if config.force:  # this run's cell only: its shard files go, other cells stay
            shutil.rmtree(cell.out_file.with_suffix(".shards"), ignore_errors=True)
            outcome.todo[cell.key] = list(cell.shards)
            continue
        outcome.todo[cell.key] = [t for t in cell.shards if not shard_done(cell.out_file, t)]
        outcome.reused_shards += len(cell.shards) - len(outcome.todo[cell.key])


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


def _finish(outcome: RunOutcome, cell: CellPlan, shards: list[Shard] | None = None) -> CellRecord:
    """Assemble a cell whose shards are all in (``shards``, or else from their files): its set
    metrics are computed from the merged states of its shards, then the cell is written."""
    if shards is None:
        shards = [Shard.read(shard_path(cell.out_file, t)) for t in cell.shards]
    record = copy.deepcopy(cell.record)  # the plan's record stays as planned
    samples, states = join_shards(record, shards)
    if record.ok and samples is not None:
        errors = finish_sets(record, outcome.plan.metrics[cell.key[0]], states)
        merged = record.metric_errors | errors
        record.metric_errors = {name: merged[name] for name in record.metrics if name in merged}  # the run's order
        outcome.notes.extend(f"metric '{name}' failed on {'/'.join(cell.key)}: {error}"
                             for name, error in errors.items())
    return write_assembled(cell.out_file, record, samples)


def _rescore(outcome: RunOutcome, cell: CellPlan, config: RunConfig) -> None:
    """Score a finished cell that lacks some of the run's metrics from its kept 8-bit outputs."""
    spec, mask, method = cell.key
    record = read_cell(cell.out_file)
    done = (set(record.rows or {}) | set(record.set_scores)) - set(record.metric_errors or {})
    metrics = {name: m for name, m in outcome.plan.metrics[spec].items() if name not in done}
    split = outcome.plan.splits[spec]
    arrays = read_samples(cell.out_file, outputs=True)
    assert arrays is not None  # reuse found them readable while the folder was locked
    notes = score_cell(record, arrays, split.images, outcome.plan.known[(spec, mask)], split.labels, metrics,
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
                executor.release(release_on_worker, str(task.method))

    return finished


def _open_folder(outcome: RunOutcome, config: RunConfig, registry: Registry, executor: Executor):
    """Start the executor, take the results folder and look up what it holds; returns the run's
    manifest and the folder's lock. Everything that can refuse the run happens here, before the first write."""
    executor.start()  # an unreachable scheduler fails here, before anything is written
    lock = None
    try:
        previous, lock = prepare_out(config, outcome.notes)
        _look_up(outcome, config)  # a corrupt cell file is found here, before the first write
    except BaseException:
        if lock is not None:
            lock.close()
        executor.close()
        raise
    manifest = build_manifest(config, registry)
    manifest["dataset_digests"] = outcome.plan.digests
    manifest["hardware"]["torch_threads"] = outcome.plan.threads  # per worker
    manifest["display"] = merge_display(previous.get("display") if isinstance(previous, dict) else None,
                                        outcome.plan.display)
    if isinstance(previous, dict):  # a resumed run keeps the record of earlier attempts
        history = previous.pop("history", [])
        manifest["history"] = (history if isinstance(history, list) else []) + [previous]
    return manifest, lock


def _execute(outcome: RunOutcome, config: RunConfig, executor: Executor, inputs: Inputs,
             bar: ProgressBar) -> None:
    """Rescore what only lacks metrics, then run every shard still to run and write as results come."""
    cells = {cell.key: cell for cell in outcome.plan.cells}
    tasks = [task for cell in outcome.plan.cells for task in outcome.todo[cell.key]]
    by_key = {task.key: cells[key] for key, todo in outcome.todo.items() for task in todo}
    remaining = {key: len(todo) for key, todo in outcome.todo.items()}
    if executor.local:  # in this process: the plan's inputs, progress per batch, the shard's name
        def fn(task: ShardTask):
            bar.describe(task.label)
            return run_shard(task, inputs, progress=bar.update)
    else:
        fn = run_shard
    release = _releaser(tasks, inputs, executor)
    for cell in outcome.rescore:  # finished cells that lack only some metrics: no method runs again
        _rescore(outcome, cell, config)
    for cell in outcome.plan.cells:  # shards all done by an interrupted run: only the cell is missing
        if cell.key not in outcome.skipped and not outcome.todo[cell.key]:
            outcome.ran.append(_finish(outcome, cell))
    for result in executor.map(fn, tasks):
        cell = by_key[result.task.key]
        if not executor.local:
            bar.update(len(result.task.image_ids))
            bar.describe(f"done {result.task.label}")
        remaining[cell.key] -= 1
        release(result.task)
        if len(cell.shards) == 1:  # the whole cell: written at once, no shard file in between
            outcome.ran.append(_finish(outcome, cell, [_shard(cell, result)]))
        else:
            _write_shard(cell, result)  # this process is the only writer
            if remaining[cell.key] == 0:
                outcome.ran.append(_finish(outcome, cell))
        if remaining[cell.key] == 0:
            bar.cell_done("/".join(cell.key), outcome.ran[-1].ok)


def run(config: RunConfig, registry: Registry | None = None, show_progress: bool = True) -> RunOutcome:
    """Resolve, plan, take the results folder, start the executor, then run every unfinished shard;
    returns what ran, what was reused, and notes."""
    registry = registry or Registry()
    inputs = Inputs(registry)  # this process's loaded things: the plan's, then the in-process shards'
    resolved = resolve(config, registry)
    config = resolved.config  # the default preset's choices applied, once
    planned = plan(resolved, inputs)
    outcome = RunOutcome(planned, notes=list(planned.notes))
    executor: Executor = registry.create("executor", planned.executor)
    manifest, lock = _open_folder(outcome, config, registry, executor)
    bar = None
    try:
        write_manifest(config.out, manifest)
        bar = ProgressBar(sum(len(t.image_ids) for todo in outcome.todo.values() for t in todo), show_progress)
        _execute(outcome, config, executor, inputs, bar)
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
        _close(config, manifest, executor, lock, bar)
    return outcome


def _close(config: RunConfig, manifest: dict, executor: Executor, lock, bar: ProgressBar | None) -> None:
    """Close the bar and the executor, and write the manifest's last state, whatever stopped the run."""
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

