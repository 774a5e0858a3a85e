"""Built-in executors: ``inprocess`` (default), ``processes`` (a local pool) and ``dask``.

All yield results as they finish; none writes files (the client does). ``processes`` and ``dask``
run one torch thread per worker, so ``--workers N`` uses N cores.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Annotated

from benchkit.errors import RunStopped, UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Executor
from benchkit.plugin.options import Range


class InProcess(Executor):
    """Runs shards one after another in this process (the default)."""

    name = "inprocess"
    description = "one shard after another in this process (default)"
    local = True
    default_shard_size = None  # one shard per cell

    def map(self, fn, tasks):
        for task in tasks:
            yield fn(task)


def _start_worker(threads: int, parent: int) -> None:
    """Set up a pool worker: ``threads`` torch threads; Ctrl-C is the client's to handle (the
    terminal sends it to every process of the group, and a worker would print a traceback); and the
    worker exits when its parent is gone, so a client killed with ``kill -9`` leaves no orphans."""
    import os
    import signal
    import threading
    import time

    import torch

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="benchkit-parent-watch", daemon=True).start()


class Processes(Executor):
    """A pool of local worker processes (spawned, so no state is inherited from the client).

    A worker that dies (killed, out of memory) breaks the pool: the pool is started again and the
    shards that had not come back are run again, up to ``retries`` times; then the run stops with
    one line, keeping every finished shard.

    Parameters
    ----------
    workers : int
        Number of worker processes (one torch thread each).
    retries : int
        Times the pool is restarted after a worker died.
    """

    name = "processes"
    description = "a local pool of worker processes (--workers N, one torch thread each)"

    def __init__(self, workers: Annotated[int, Range(1, 1024)] = 2, retries: Annotated[int, Range(0, 100)] = 3) -> None:
        self.workers, self.retries = workers, retries
        self._pool = None

    def start(self) -> None:
        import os

        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start_worker, initargs=(1, os.getpid()))

    def map(self, fn, tasks):
        from concurrent.futures.process import BrokenProcessPool

        pending, deaths = list(tasks), 0
        while pending:
            futures = {self._pool.submit(fn, task): task for task in pending}
            lost = []
            for future in as_completed(futures):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost.append(futures[future])
                    continue
                yield result
            pending = lost
            if not lost:
                return
            deaths += 1
            self.close()
            if deaths > self.retries:
                raise RunStopped(f"a worker process died {deaths} times (killed, or out of memory), and "
                                 f"{len(lost)} shards did not finish: finished shards are kept; rerun the same "
                                 "command to resume (with fewer --workers or a smaller --batch-size if memory is "
                                 "short)")
            warnings.warn(f"a worker process died (killed, or out of memory): running its {len(lost)} unfinished "
                          f"shards again (retry {deaths} of {self.retries}, -o processes.retries=N)")
            self.start()

    def close(self) -> None:
        """Stop the workers now: shards still running are abandoned (their files were never written)."""
        if self._pool is None:
            return
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(5)
        self._pool = None


# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap
# threshold at 128 KiB: every larger tensor is then a fresh mmap, and torch code that allocates many
# intermediate tensors (tv, lowrank) slows down. Raising the mmap threshold to glibc's maximum
# restores the speed. This is the second of two ways benchkit sets glibc's thresholds, on purpose:
# benchkit.run.allocator sets them with mallopt in a process already running, but the nanny's
# environment variable is read by glibc when the worker process starts, before any Python runs,
# and would undo a later mallopt; so a Dask worker gets them through its environment.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432"}


DASK_LOG = "benchkit-dask.log"


def _log_to_file() -> None:
    """Send this process's ``distributed`` log records to ``$TMPDIR/benchkit-dask.log``; only
    warnings and worse reach the terminal, one line each (no tracebacks)."""
    import tempfile
    from pathlib import Path

    logger = logging.getLogger("distributed")
    if any(getattr(h, "benchkit", False) for h in logger.handlers):
        return
    # distributed gives several of its loggers a terminal handler of their own: they all go to ours
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] == "distributed"]
    for child in map(logging.getLogger, names):
        for handler in list(child.handlers):
            child.removeHandler(handler)
        if child is not logger:
            child.propagate = True
    to_file = logging.FileHandler(Path(tempfile.gettempdir()) / DASK_LOG, delay=True)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
    terminal = logging.StreamHandler()
    terminal.setLevel(logging.WARNING)
    terminal.addFilter(lambda record: bool(record.getMessage().strip()))  # a bare traceback: the file has it
    terminal.setFormatter(_OneLine("benchkit: dask: %(message)s (details: $TMPDIR/" + DASK_LOG + ")"))
    for handler in (to_file, terminal):
        handler.benchkit = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


class _OneLine(logging.Formatter):
    """A log record as its first line only: no traceback (that goes to the log file)."""

    def format(self, record) -> str:
        record.message = record.getMessage()
        text = self.formatMessage(record)
        return text.splitlines()[0] if text else text


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore Ctrl-C while worker processes are started: they inherit the ignored signal, so Ctrl-C in
    the terminal (sent to every process of its group) reaches only the client, which closes them."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are not ours to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Dask(Executor):
    """Dask's distributed scheduler (extra ``benchkit[dask]``): a ``LocalCluster`` of ``workers``
    processes, or the cluster at ``scheduler`` (``tcp://host:8786``, started by ``dask scheduler`` /
    ``dask worker``, dask-jobqueue or dask-cuda). A shard whose worker dies is run again elsewhere
    (up to ``retries`` times); the client still receives each shard's result once. Workers of a
    cluster started elsewhere should get ``MALLOC_MMAP_THRESHOLD_=33554432`` in their environment
    (see :data:`WORKER_ENV`), or tv and lowrank run slower there (docs/guides/parallel.md).

    Parameters
    ----------
    workers : int
        Worker processes of the LocalCluster (ignored with ``scheduler``).
    scheduler : str or None
        Address of a running scheduler; None starts a LocalCluster.
    retries : int
        Times a shard is retried after its worker died or it raised outside benchkit's handling.
    timeout : float
        Seconds to wait for the scheduler.
    """

    name = "dask"
    requires = ("distributed",)
    install_hint = "pip install 'benchkit[dask]'"
    description = "Dask distributed: a LocalCluster (--workers N) or --scheduler ADDRESS (extra benchkit[dask])"

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--scheduler", metavar="ADDRESS",
                            help="dask: address of a running scheduler (tcp://host:8786) instead of a local cluster; "
                            "given alone, it picks --executor dask")

    def __init__(self, workers: Annotated[int, Range(1, 4096)] = 2, scheduler: str | None = None,
                 retries: Annotated[int, Range(0, 100)] = 3,
                 timeout: Annotated[float, Range(0, exclusive=True)] = 10.0):
        self.workers, self.scheduler, self.retries, self.timeout = workers, scheduler, retries, timeout
        self.client = self.cluster = None

    def start(self) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise UserError("--executor dask needs Dask's distributed scheduler: pip install 'benchkit[dask]'") from exc
        _log_to_file()
        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout=self.timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                raise UserError(f"cannot reach the Dask scheduler at {self.scheduler} ({exc}): start it "
                                "(`dask scheduler`) or check the address") from exc
            return
        import dask

        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}), \
                _sigint_ignored():
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=40)
        self.client = Client(self.cluster)

    def map(self, fn, tasks):
        from dask.distributed import as_completed as dask_completed

        where = self.scheduler or "the local cluster"
        try:
            futures = self.client.map(fn, tasks, pure=False, retries=self.retries)
            for future in dask_completed(futures):
                result = future.result()  # run_shard catches the task's own errors: any here are Dask's
                yield result
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as exc:  # a lost scheduler, workers that keep dying (KilledWorker) ...
            reason = str(exc).splitlines()[0][:160] if str(exc) else ""
            raise RunStopped(f"lost the Dask scheduler at {where} or its workers ({type(exc).__name__}"
                             f"{': ' + reason if reason else ''}): finished shards are kept; check the cluster "
                             f"($TMPDIR/{DASK_LOG} has the details) and rerun the same command to resume") from exc

    def release(self, fn, method: str) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):  # freeing memory early is a courtesy: never stop a run for it
                self.client.run(fn, method)

    def close(self) -> None:
        for resource in (self.client, self.cluster):
            if resource is not None:
                with contextlib.suppress(Exception):  # a scheduler that died cannot be closed politely
                    resource.close(timeout=self.timeout) if resource is self.client else resource.close()
        self.client = self.cluster = None


@hookimpl
def register_executors(register):
    for cls in (InProcess, Processes, Dask):
        register(cls)
