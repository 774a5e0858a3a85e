"""Executors, shards, one writer, faults, one run per results folder."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from conftest import TestPlugins

import benchkit
from benchkit.cli import main
from benchkit.errors import UserError
from benchkit.plugin.interfaces import Method
from benchkit.plugin.registry import Registry
from benchkit.run.runner import RunConfig, run
from benchkit.store.results import failures, load_results

BENCHKIT = [sys.executable, "-m", "benchkit.cli"]
KEYS = ["dataset", "mask", "method", "image_id"]


def table(path):
    return load_results(path).sort_values(KEYS).reset_index(drop=True)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as local:
        yield local


def test_same_numbers_in_process_and_on_a_two_worker_cluster(tmp_path, cluster):
    """Every method is bit-identical, gan included: it searches in fixed groups of images, so an
    image's result does not depend on its shard (3 images here) or batch (8)."""
    common = dict(methods=["mean-fill", "tv", "tv[max_iter=30]", "nn", "gan"], masks=["center", "random"], n_images=8,
                  batch_size=8,
                  options={"gan": {"iterations": "20"}}, metrics=["psnr", "ssim", "l1"])
    run(RunConfig(out=tmp_path / "here", **common), Registry(block_external=True), show_progress=False)
    run(RunConfig(out=tmp_path / "there", executor="dask", shard_size=3,
                  executor_options={"scheduler": cluster.scheduler_address}, **common),
        Registry(block_external=True), show_progress=False)
    here, there = table(tmp_path / "here"), table(tmp_path / "there")
    assert len(here) == len(there) == 5 * 2 * 8 and here[KEYS].equals(there[KEYS])
    for metric in ("psnr", "ssim", "l1", "missing_fraction"):
        np.testing.assert_array_equal(here[metric], there[metric])
    assert not list((tmp_path / "there" / "cells").glob("*.shards"))  # assembled, shard files removed


def test_a_killed_worker_loses_and_duplicates_nothing(tmp_path, cluster):
    client = pytest.importorskip("distributed").Client(cluster)
    pids = list(client.run(os.getpid).values())
    config = RunConfig(methods=["flat-fill"], masks=["center", "half"], n_images=24, batch_size=1, shard_size=4,
                       options={"flat-fill": {"delay": "0.15"}}, out=tmp_path / "r", executor="dask",
                       executor_options={"scheduler": cluster.scheduler_address, "retries": "3"})
    killer = threading.Timer(1.5, os.kill, (pids[0], signal.SIGKILL))  # in the middle of its second shard
    started = time.time()
    killer.start()
    try:
        outcome = run(config, Registry(block_external=False), show_progress=False)
    finally:
        killer.cancel()
        client.close()
    assert time.time() - started > 2.0  # the worker died in the middle of the run ...
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # ... and is gone
    assert not outcome.failed
    df = load_results(tmp_path / "r")
    assert len(df) == 48 and not df.duplicated(["mask", "image_id"]).any()
    assert sorted(df.image_id.unique()) == list(range(24))


def test_an_unreachable_scheduler_is_one_line_before_any_write(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--methods", "mean-fill", "--scheduler", "tcp://127.0.0.1:9", "--out", "r"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert not (tmp_path / "r").exists()


class FailsOnBright(Method):
    """Raises on any batch holding an image brighter than 0.5 on average."""

    name = "fails-on-bright"

    def inpaint(self, images, known):
        if (images.sum((1, 2, 3)) / known.sum((1, 2, 3)) > 0.5).any():
            raise RuntimeError("too bright")
        return images


class FailPlugins(TestPlugins):
    @benchkit.hookimpl
    def register_methods(self, register):
        register(FailsOnBright)


def test_a_raising_method_fails_only_its_shard(tmp_path):
    registry = Registry(block_external=True, extra=[FailPlugins()])
    images = registry.create("dataset", "tiny").images("test")
    config = RunConfig(methods=["fails-on-bright"], datasets=["tiny"], masks=["center"], n_images=8,
                       batch_size=2, shard_size=2, out=tmp_path / "r")
    known = torch.ones(8, 1, 16, 16, dtype=torch.bool)
    known[:, :, 4:12, 4:12] = False  # the center mask
    bright = ((images * known).sum((1, 2, 3)) / known.sum((1, 2, 3)) > 0.5).view(4, 2).any(1)
    assert 0 < int(bright.sum()) < 4  # the fixture has some bright and some dark shards
    outcome = run(config, registry, show_progress=False)
    assert len(outcome.failed) == 1 and "too bright" in outcome.failed[0].error
    df = load_results(tmp_path / "r")
    assert sorted(df.image_id) == [i for s in range(4) if not bright[s] for i in (2 * s, 2 * s + 1)]
    assert len(failures(tmp_path / "r")) == 1
    shard_files = list((tmp_path / "r" / "cells").glob("*.shards/*.json"))
    assert len(shard_files) == 4  # kept: a rerun redoes only the failed shards
    mtimes = {p: p.stat().st_mtime_ns for p in shard_files if json.loads(p.read_text())["status"] == "ok"}
    run(config, registry, show_progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())


def test_processes_executor_matches_in_process(tmp_path):
    common = dict(methods=["mean-fill", "tv"], masks=["pattern"], n_images=6, metrics=["psnr"])
    run(RunConfig(out=tmp_path / "a", **common), Registry(block_external=True), show_progress=False)
    run(RunConfig(out=tmp_path / "b", executor="processes", shard_size=4, executor_options={"workers": 2}, **common),
        Registry(block_external=True), show_progress=False)
    assert table(tmp_path / "a").drop(columns="seconds").equals(table(tmp_path / "b").drop(columns="seconds"))


def test_two_runs_on_one_folder_do_not_interleave(tmp_path):
    args = BENCHKIT + ["run", "--methods", "flat-fill", "--masks", "center", "--n-images", "8", "--batch-size", "1",
                       "-o", "flat-fill.delay=1.5", "--out", "r"]
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "r" / "manifest.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert second.returncode == 2 and "another benchkit run" in second.stderr and "Traceback" not in second.stderr
    first.kill()  # dies holding the lock: the OS releases it
    first.communicate()
    third = subprocess.run(args[:-4] + ["--out", "r"], cwd=tmp_path, capture_output=True, text=True)
    assert third.returncode == 0, third.stderr


def test_reuse_needs_the_same_versions_and_ignores_metric_order(tmp_path, monkeypatch):
    config = RunConfig(methods=["mean-fill"], masks=["center"], n_images=4, metrics=["psnr", "l1"], out=tmp_path / "r")
    run(config, Registry(block_external=True), show_progress=False)
    config.metrics = ["l1", "psnr"]
    assert run(config, Registry(block_external=True), show_progress=False).skipped  # same cell
    from benchkit.run import plan

    monkeypatch.setattr(plan, "__version__", "9.9")  # the version is part of the task key
    assert not run(config, Registry(block_external=True), show_progress=False).skipped  # redone


def test_manifest_is_never_left_running(tmp_path, monkeypatch):
    from benchkit.run import runner

    def explode(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(runner, "write_assembled", explode)
    with pytest.raises(MemoryError):
        run(RunConfig(methods=["mean-fill"], masks=["center"], n_images=2, out=tmp_path / "r"),
            Registry(block_external=True), show_progress=False)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "out of memory" in manifest["error"]


def test_workers_without_a_parallel_executor_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--methods", "mean-fill", "--workers", "2"]) == 2
    assert "--executor processes" in capsys.readouterr().err
    with pytest.raises(UserError, match="shard-size 0 must be at least 1"):
        run(RunConfig(methods=["mean-fill"], shard_size=0, out=tmp_path / "x"), Registry(block_external=True))


def test_a_killed_client_resumes_per_shard(tmp_path):
    args = BENCHKIT + ["run", "--methods", "flat-fill", "--masks", "center", "--n-images", "16", "--batch-size", "1",
                       "--shard-size", "4", "-o", "flat-fill.delay=0.2", "--out", "r"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shards = tmp_path / "r" / "cells"
    deadline = time.time() + 120
    while len(list(shards.glob("*.shards/*.json"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    done = {p: p.stat().st_mtime_ns for p in shards.glob("*.shards/*.json")}
    assert 2 <= len(done) < 4
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    df = load_results(tmp_path / "r")
    assert sorted(df.image_id) == list(range(16))
    assert f"{len(done)} finished shards of unfinished cells reused" in result.stdout  # not run again
    assert not list(shards.glob("*.shards"))  # assembled and tidied


def test_executor_options_come_from_dash_o(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--methods", "mean-fill", "--executor", "processes", "-o", "processes.workers=0"]) == 2
    assert "processes.workers='0' is out of range" in capsys.readouterr().err
