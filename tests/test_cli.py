"""The command line, run as a user would: in a subprocess, from a scratch folder."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import benchkit
from benchkit.cli import main

BENCHKIT = [sys.executable, "-m", "benchkit.cli"]


def bk(*args, cwd, check=True, **kwargs):
    result = subprocess.run(BENCHKIT + list(args), cwd=cwd, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def test_run_prints_table_and_load_results_reads_it(tmp_path):
    result = bk("run", "--methods", "mean-fill", "--masks", "center,random", "--n-images", "64", cwd=tmp_path)
    assert "psnr (dB) on fashion-mnist-mini" in result.stdout and "| mean-fill" in result.stdout
    df = benchkit.load_results(tmp_path / "results" / "default")
    assert {"dataset", "mask", "method", "image_id", "psnr", "ssim", "l1", "psnr_hole", "seconds"} <= set(df.columns)
    assert len(df) == 128 and df.groupby("mask").image_id.nunique().tolist() == [64, 64]
    manifest = json.loads((tmp_path / "results" / "default" / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["versions"]["torch"] and manifest["settings"]["seed"] == 0
    report = bk("report", "results/default", "--format", "csv", cwd=tmp_path).stdout
    assert report.splitlines()[0] == "dataset,metric,method,mask,mean,ci95,n"
    latex = bk("report", "results/default", "--format", "latex", cwd=tmp_path).stdout
    assert r"\toprule" in latex and r"$\pm$" in latex


def test_example_plugin_runs_from_the_command_line(tmp_path):
    listing = bk("list", cwd=tmp_path).stdout
    assert "flat-fill" in listing and "benchkit-example-plugin" in listing
    result = bk("run", "--methods", "flat-fill", "--masks", "stripes", "--n-images", "8", cwd=tmp_path)
    assert "| flat-fill" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "--methods", "mean-fil"], "unknown method 'mean-fil': did you mean 'mean-fill'?"),
    (["run", "--datasets", "fashion-mnist", "--data-dir", "/nonexistent"], None),
    (["run", "--out", "/proc/forbidden"], "cannot write to results folder"),
    (["run", "-o", "nonsense"], "is not PLUGIN.KEY=VALUE"),
    (["report", "nowhere"], "does not exist"),
    (["train", "gan", "--dataset", "nope"], "unknown dataset 'nope'"),
])
def test_bad_input_one_line_exit_2(tmp_path, args, message, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if message is None:  # a missing dataset: only when Debian's copy is absent too
        from benchkit.builtins.datasets import basic as datasets
        monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "none")
        message = "benchkit data download fashion-mnist"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("benchkit: error: ") and message in err
    assert not (tmp_path / "results").exists()


def test_corrupt_results_folder_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "manifest.json").write_text("{not json")
    assert main(["report", "r"]) == 2
    assert "manifest.json is corrupt" in capsys.readouterr().err


def _run_until_first_cell(tmp_path, sig):
    args = ["run", "--methods", "flat-fill", "--masks", "center,random,half", "--n-images", "16",
            "--batch-size", "4", "-o", "flat-fill.delay=0.4", "--out", "r"]
    proc = subprocess.Popen(BENCHKIT + args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    cells = tmp_path / "r" / "cells"
    deadline = time.time() + 120
    while not list(cells.glob("*.json")) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    return args, proc.returncode, err


def test_killed_run_resumes_without_redoing_cells(tmp_path):
    args, code, _ = _run_until_first_cell(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "r" / "cells").glob("*.json")}
    assert 1 <= len(done) < 3
    for path in done:
        assert json.loads(path.read_text())["status"] == "ok"
    result = bk(*args, cwd=tmp_path)
    assert f"{len(done)} finished cells reused" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in done} == done  # not redone
    assert len(list((tmp_path / "r" / "cells").glob("*.json"))) == 3
    df = benchkit.load_results(tmp_path / "r")
    assert len(df) == 48 and not df.duplicated(["mask", "image_id"]).any()


def test_ctrl_c_stops_cleanly(tmp_path):
    _, code, err = _run_until_first_cell(tmp_path, signal.SIGINT)
    assert code == 130 and "run the same command again to resume" in err
    assert "Traceback" not in err
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"


def test_help_states_the_default_size():
    help_text = subprocess.run(BENCHKIT + ["run", "--help"], capture_output=True, text=True).stdout
    assert "default 16" in help_text and "fashion-mnist-mini" in help_text
