"""One path for a run: one declaration of optional dependencies for every plugin kind, a plan that
is data, and the store that writes what the runner finished without calling back into it."""
import dataclasses

import pytest
import torch

import benchkit
from benchkit.errors import UserError
from benchkit.plugin.interfaces import Executor, ImageMetric, Method
from benchkit.plugin.registry import Registry
from benchkit.run.inputs import Inputs
from benchkit.run.plan import plan
from benchkit.run.resolve import RunConfig, resolve
from benchkit.run.runner import run

MISSING = "no_such_module_for_benchkit_tests"


class NeedsMethod(Method):
    name, requires, install_hint = "needs-method", (MISSING,), "pip install needs"

    def inpaint(self, images, known):
        return images


class NeedsMetric(ImageMetric):
    name, requires, install_hint = "needs-metric", (MISSING,), "pip install needs"

    def score(self, prediction, target, known):
        return torch.zeros(len(prediction))


class NeedsExecutor(Executor):
    name, requires, install_hint, local = "needs-executor", (MISSING,), "pip install needs", True

    def map(self, fn, tasks):
        return map(fn, tasks)


class Plugins:
    @benchkit.hookimpl
    def register_methods(self, register):
        register(NeedsMethod)

    @benchkit.hookimpl
    def register_metrics(self, register):
        register(NeedsMetric)

    @benchkit.hookimpl
    def register_executors(self, register):
        register(NeedsExecutor)


@pytest.mark.parametrize("kind,change", [("method", {"methods": ["needs-method"]}),
                                         ("metric", {"metrics": ["psnr", "needs-metric"]}),
                                         ("executor", {"executor": "needs-executor"})])
def test_a_missing_optional_dependency_stops_any_plugin_kind_before_anything_is_written(tmp_path, kind, change):
    registry = Registry(block_external=True, extra=[Plugins()])
    config = RunConfig(**{"methods": ["mean-fill"], "masks": ["center"], "n_images": 2, "out": tmp_path / "R"}
                       | change)
    with pytest.raises(UserError, match=f"^{kind} 'needs-{kind}' needs the module '{MISSING}': pip install needs$"):
        run(config, registry, show_progress=False)
    assert not (tmp_path / "R").exists()


def test_a_plan_is_frozen_data_that_a_run_does_not_change(tmp_path):
    registry = Registry(block_external=True)
    config = RunConfig(methods=["mean-fill", "tv[max_iter=5]"], masks=["center"], n_images=4, metrics=["psnr"],
                       out=tmp_path / "R")
    resolved = resolve(config, registry)
    assert resolved.config.datasets == ["fashion-mnist-mini"]  # the default preset's, applied once
    assert [s.canonical for s in resolved.methods] == ["mean-fill", "tv[max_iter=5]"]
    planned = plan(resolved, Inputs(registry))
    with pytest.raises(dataclasses.FrozenInstanceError):
        planned.cells = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        planned.cells[0].shards = ()
    before = [dataclasses.asdict(cell.record) for cell in planned.cells]
    outcome = run(config, registry, show_progress=False)
    assert [cell.key for cell in outcome.plan.cells] == [cell.key for cell in planned.cells]
    assert [dataclasses.asdict(cell.record) for cell in outcome.plan.cells] == before  # rows live in the cells written
    assert all(record.rows for record in outcome.ran)
    again = run(config, registry, show_progress=False)
    assert again.skipped == outcome.plan.keys and again.ran == [] and all(not t for t in again.todo.values())
