"""Every number of benchkit 0.3.0 is unchanged: a small run of every built-in method (a few
iterations where a method iterates) and a ``--bins lama`` run with fid-fmnist, written by 0.3.0
(commit 1175b24) into tests/data/run-0.3.0, are run again and compared to the last digit.

Two changes of 0.4.0 are mapped, not hidden: an exact fill scores the 100 dB cap instead of +inf,
and ``repaint`` keeps RePaint's timesteps by default, so 0.3.0's are asked for with
``spacing=diffusers``.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest

import benchkit
from benchkit.plugin.registry import Registry
from benchkit.run.runner import RunConfig, run

REFERENCE = Path(__file__).parent / "data" / "run-0.3.0"
METHODS = ["biharmonic", "ce", "dip[iterations=5]", "gan[iterations=20]", "lowrank", "mean-fill", "nn", "patchmatch",
           "repaint[steps=4,resamplings=1]", "telea", "tv[max_iter=50]"]
RENAMED = {"repaint[resamplings=1,spacing=diffusers,steps=4]": "repaint[resamplings=1,steps=4]"}


def _rerun(tmp_path, config: RunConfig):
    outcome = run(config, Registry(block_external=True), show_progress=False)
    assert not outcome.failed
    return outcome


def test_every_built_in_method_gives_0_3_0_s_psnr_and_ssim(tmp_path):
    pytest.importorskip("diffusers")
    pytest.importorskip("patchmatch")
    methods = [m.replace("steps=4,", "steps=4,spacing=diffusers,") for m in METHODS]
    _rerun(tmp_path, RunConfig(methods=methods, masks=["center", "thick"], n_images=8, metrics=["psnr", "ssim"],
                               out=tmp_path / "R"))
    key = ["mask", "method", "image_id"]
    now = benchkit.load_results(tmp_path / "R").replace({"method": RENAMED}).set_index(key).sort_index()
    then = benchkit.load_results(REFERENCE / "methods").set_index(key).sort_index()
    assert list(now.index) == list(then.index) and len(then) == 11 * 2 * 8
    np.testing.assert_array_equal(now.ssim.to_numpy(), then.ssim.to_numpy())
    exact = np.isinf(then.psnr.to_numpy())
    np.testing.assert_array_equal(now.psnr.to_numpy()[~exact], then.psnr.to_numpy()[~exact])
    assert (now.psnr.to_numpy()[exact] == 100).all()


def test_set_metrics_per_hole_area_bin_are_0_3_0_s(tmp_path):
    _rerun(tmp_path, RunConfig(methods=["mean-fill", "tv[max_iter=50]"], masks=["thick", "mat-large"], n_images=32,
                               metrics=["psnr", "fid-fmnist"], bins="lama", out=tmp_path / "R"))
    key = ["mask", "method", "bin"]
    now = benchkit.load_results(tmp_path / "R", level="set").set_index(key).sort_index()
    then = benchkit.load_results(REFERENCE / "bins", level="set").set_index(key).sort_index()
    assert list(now.index) == list(then.index) and (now.n_images == then.n_images).all()
    np.testing.assert_array_equal(now["fid-fmnist"].to_numpy(), then["fid-fmnist"].to_numpy())


def test_a_0_3_0_folder_is_redone_with_a_note(tmp_path, capsys):
    from benchkit.cli import main

    shutil.copytree(REFERENCE / "bins", tmp_path / "R")
    assert main(["run", "--methods", "mean-fill", "--masks", "thick", "--metrics", "psnr,fid-fmnist", "--bins", "lama",
                 "--n-images", "32", "--out", str(tmp_path / "R")]) == 0
    out = capsys.readouterr().out
    assert "note: cell fashion-mnist-mini/thick/mean-fill was made by benchkit 0.3.0: redoing it" in out
