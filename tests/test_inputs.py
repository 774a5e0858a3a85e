"""What a process loads for a run is owned by an Inputs with a lifetime: a method set up once per
process for all its shards, released when its shards are done, and memory bounded by a budget."""
import gc
import weakref

import pytest
import torch

import benchkit
from benchkit.plugin.interfaces import Method
from benchkit.plugin.registry import Registry
from benchkit.plugin.spec import Spec
from benchkit.run.inputs import Inputs, tensor_bytes
from benchkit.run.runner import RunConfig, run
from benchkit.run.tasks import ShardTask


class Holder(Method):
    """A method that holds a network of ``size`` parameters (to measure what Inputs keeps)."""

    name = "holder"

    def __init__(self, size: int = 1000) -> None:
        self.size = size

    def setup(self, context):
        self.net = torch.nn.Linear(self.size, 1, bias=False)

    def inpaint(self, images, known):
        return images


class Plugins:
    @benchkit.hookimpl
    def register_methods(self, register):
        register(Holder)


def _task(method: str) -> ShardTask:
    return ShardTask(dataset=Spec.parse("fashion-mnist-mini", "dataset"), mask=Spec.parse("center", "mask"),
                     method=Spec.parse(method, "method"), image_ids=(0,), n_images=1, metrics=())


def test_the_least_recently_used_method_goes_beyond_the_budget_and_release_frees_it():
    inputs = Inputs(Registry(block_external=True, extra=[Plugins()]), method_budget=6000)
    first = inputs.method(_task("holder"), (1, 32, 32), lambda: None)
    assert tensor_bytes(first) == 4000  # 1000 float32 parameters
    gone = weakref.ref(first.net)
    assert inputs.method(_task("holder"), (1, 32, 32), lambda: None) is first and inputs.setups == 1
    second = inputs.method(_task("holder[size=500]"), (1, 32, 32), lambda: None)  # 4000 + 2000 bytes: within
    assert inputs.methods_held() == ["holder", "holder[size=500]"]
    third = inputs.method(_task("holder[size=600]"), (1, 32, 32), lambda: None)  # 8400 > 6000: the oldest goes
    assert inputs.methods_held() == ["holder[size=500]", "holder[size=600]"]
    del first
    gc.collect()
    assert gone() is None  # nothing else kept it
    inputs.release_method("holder[size=500]")
    assert inputs.methods_held() == ["holder[size=600]"] and second is not None and third is not None


def _worker_state():
    """On a worker: how many set-ups its Inputs did, what it holds, and the live networks by class."""
    import gc

    import torch

    from benchkit.run import inputs as loaded

    gc.collect()
    live = [type(o).__name__ for o in gc.get_objects() if isinstance(o, torch.nn.Module)]
    held = {k: (v.setups, v.methods_held()) for k, v in loaded._WORKER.items()}
    return held, {name: live.count(name) for name in ("ContextEncoder", "Generator")}


def test_a_dask_worker_loads_a_method_once_per_cell_and_frees_it_when_its_shards_are_done(tmp_path):
    pytest.importorskip("distributed")
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    client = Client(cluster)
    try:
        base = dict(masks=["center"], n_images=32, shard_size=8, metrics=["psnr"], executor="dask",
                    executor_options={"scheduler": cluster.scheduler_address})
        first = run(RunConfig(methods=["ce"], out=tmp_path / "A", **base), Registry(block_external=True),
                    show_progress=False)
        assert not first.failed and len(first.plan.cells[0].shards) == 4
        (held, live), = client.run(_worker_state).values()
        assert list(held.values()) == [(1, [])]  # four shards of one cell: set up once; then released
        assert live["ContextEncoder"] == 0  # its network is gone from the worker before the next run
        second = run(RunConfig(methods=["gan[iterations=2]"], out=tmp_path / "B", **base),
                     Registry(block_external=True), show_progress=False)
        assert not second.failed
        (held, live), = client.run(_worker_state).values()
        assert list(held.values()) == [(2, [])] and live == {"ContextEncoder": 0, "Generator": 0}
    finally:
        client.close()
        cluster.close()
