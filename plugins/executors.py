"""Built-in executors: ``inprocess`` (default), ``processes`` (a local pool) and ``dask``.

All yield results as they finish; none writes files (the client does). ``processes`` and ``dask``
run one torch thread per worker, so ``--workers N`` uses N cores.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Annotated

from benchkit.errors import UserError
from benchkit.hookspecs import hookimpl
from benchkit.interfaces import Executor
from benchkit.options import Range


class InProcess(Executor):
    """Runs shards one after another in this process (the default)."""

    name = "inprocess"
    description = "one shard after another in this process (default)"
    local = True
    default_shard_size = None  # one shard per cell
    threads = None

    def map(self, fn, tasks):
        for task in tasks:
            yield fn(task)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class Processes(Executor):
    """A pool of local worker processes (spawned, so no state is inherited from the client).

    Parameters
    ----------
    workers : int
        Number of worker processes (one torch thread each).
    """

    name = "processes"
    description = "a local pool of worker processes (--workers N, one torch thread each)"

    def __init__(self, workers: Annotated[int, Range(1, 1024)] = 2) -> None:
        self.workers = workers
        self._pool = None

    def start(self) -> None:
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_set_threads, initargs=(1,))

    def map(self, fn, tasks):
        futures = [self._pool.submit(fn, task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap
# threshold at 128 KiB: every larger tensor is then a fresh mmap, and torch code that allocates many
# intermediate tensors (tv, lowrank) runs 2.5x slower (measured: tv on 128 images, one thread, 2.21 s
# against 0.88 s). Raising the mmap threshold to glibc's maximum restores the speed (0.92 s).
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432"}


class Dask(Executor):
    """Dask's distributed scheduler (extra ``benchkit[dask]``): a ``LocalCluster`` of ``workers``
    processes, or the cluster at ``scheduler`` (``tcp://host:8786``, started by ``dask scheduler`` /
    ``dask worker``, dask-jobqueue or dask-cuda). A shard whose worker dies is run again elsewhere
    (up to ``retries`` times); the client still receives each shard's result once. Workers of a
    cluster started elsewhere should get ``MALLOC_MMAP_THRESHOLD_=33554432`` in their environment
    (see :data:`WORKER_ENV`), or tv and lowrank run 2.5x slower there.

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
    description = "Dask distributed: a LocalCluster (--workers N) or --scheduler ADDRESS (extra benchkit[dask])"

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
        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout=self.timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                raise UserError(f"cannot reach the Dask scheduler at {self.scheduler} ({exc}): start it "
                                "(`dask scheduler`) or check the address") from exc
            return
        import dask

        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}):
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=40)
        self.client = Client(self.cluster)

    def map(self, fn, tasks):
        from dask.distributed import as_completed as dask_completed

        futures = self.client.map(fn, tasks, pure=False, retries=self.retries)
        for future in dask_completed(futures):
            yield future.result()

    def close(self) -> None:
        for resource in (self.client, self.cluster):
            if resource is not None:
                resource.close()
        self.client = self.cluster = None


@hookimpl
def register_executors(register):
    for cls in (InProcess, Processes, Dask):
        register(cls)
