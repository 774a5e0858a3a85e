"""Results a user can trust: every file a cell reads is in its key, summaries agree with the paired
statistics, nothing is deleted unless asked for exactly, and bad outputs of a plugin are named."""
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import benchkit
from benchkit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _export_and_predict(tmp_path, n=6):
    pytest.importorskip("cv2")
    exported = tmp_path / "E"
    assert main(["export", "--datasets", "fashion-mnist-mini", "--masks", "center,thick", "--n-images", str(n),
                 "--layout", "lama", "--out", str(exported)]) == 0
    out = tmp_path / "P"
    subprocess.run([sys.executable, str(ROOT / "examples" / "external_telea.py"), str(exported), str(out)],
                   check=True)
    return out


def _run(tmp_path, capsys, methods, masks, n=6, *extra):
    code = main(["run", "--methods", methods, "--masks", masks, "--n-images", str(n), "--metrics", "psnr",
                 "--out", str(tmp_path / "R"), *extra])
    return code, capsys.readouterr().out


def test_a_changed_prediction_file_redoes_exactly_the_cells_that_read_it(tmp_path, capsys):
    folder = _export_and_predict(tmp_path)
    code, _ = _run(tmp_path, capsys, f"predictions:{folder}[name=ext]", "center,thick")
    assert code == 0
    before = benchkit.load_results(tmp_path / "R").set_index(["mask", "image_id"]).psnr
    changed = folder / "fashion-mnist-mini__thick" / "00003_mask000.png"  # LaMa's layout: image 3's prediction
    shape = np.asarray(Image.open(changed)).shape
    Image.fromarray(np.full(shape, 255, np.uint8)).save(changed)  # a new model version: a white prediction
    code, out = _run(tmp_path, capsys, f"predictions:{folder}[name=ext]", "center,thick")
    assert code == 0
    assert f"file {changed} changed since cell fashion-mnist-mini/thick/ext was run: redoing it" in out
    assert "1 finished cells reused" in out  # center read none of the changed files
    after = benchkit.load_results(tmp_path / "R").set_index(["mask", "image_id"]).psnr
    image_id = 3
    assert after[("thick", image_id)] < before[("thick", image_id)]
    assert after.drop(("thick", image_id)).equals(before.drop(("thick", image_id)))


def test_redrawn_mask_files_redo_the_cells_that_use_them(tmp_path, capsys):
    masks = tmp_path / "M"
    masks.mkdir()
    big = np.zeros((32, 32), np.uint8)
    big[4:28, 4:28] = 255  # white = missing
    Image.fromarray(big).save(masks / "a.png")
    code, _ = _run(tmp_path, capsys, "mean-fill", f"file:{masks}")
    assert code == 0
    before = benchkit.load_results(tmp_path / "R").psnr.mean()
    tiny = np.zeros((32, 32), np.uint8)
    tiny[15:17, 15:17] = 255
    Image.fromarray(tiny).save(masks / "a.png")
    code, out = _run(tmp_path, capsys, "mean-fill", f"file:{masks}")
    assert code == 0 and f"file {masks / 'a.png'} changed" in out and "reused" not in out
    results = benchkit.load_results(tmp_path / "R")
    assert (results.missing_fraction == 4 / 1024).all()  # the new masks, not the stale ones
    assert results.psnr.mean() > before + 10


def _fills(rng, n_background=6, n_object=10):
    """Truth images (16 x 16 grey) whose hole (the centre 4 x 4) is black background in the first
    ``n_background`` and textured elsewhere, and two methods' fills: ``a`` exact on background and
    about 2 dB better on the textured holes; ``b`` near-exact (float rounding) on background."""
    n = n_background + n_object
    truth = torch.zeros(n, 1, 16, 16, dtype=torch.float64)
    truth[n_background:, :, 6:10, 6:10] = torch.from_numpy(rng.uniform(0.2, 0.8, (n_object, 1, 4, 4)))
    hole = torch.zeros_like(truth, dtype=torch.bool)
    hole[:, :, 6:10, 6:10] = True
    noise = torch.from_numpy(rng.normal(0, 0.1, truth.shape))
    a = torch.where(hole, truth + noise, truth)
    b = torch.where(hole, truth + 1.26 * noise, truth)  # 20 log10(1.26) = 2 dB worse
    a[:n_background], b[:n_background] = truth[:n_background], truth[:n_background] + 1e-7 * hole[:n_background]
    return truth, a, b


def test_the_summary_table_names_the_winner_its_paired_statistics_name(tmp_path):
    from benchkit.builtins.metrics.pixel import PSNR_CAP_DB, psnr
    from benchkit.report.html import missing_fraction_section
    from benchkit.report.stats import compare
    from benchkit.report.tables import format_tables
    from benchkit.store.results import summary

    truth, a, b = _fills(np.random.default_rng(0))
    values = {"a": psnr(a, truth).numpy(), "b": psnr(b, truth).numpy()}
    exact = 10 * np.log10(1 / ((b - truth) ** 2).flatten(1).mean(1)[:6].numpy())
    assert (exact > PSNR_CAP_DB).all()  # near-exact fills above the cap, which scikit-image would keep...
    assert (values["a"][:6] == PSNR_CAP_DB).all()  # ...and an exact fill is the cap, not +inf
    assert np.isfinite(np.concatenate(list(values.values()))).all()
    df = pd.DataFrame([{"dataset": "d", "mask": "m", "method": method, "image_id": i, "psnr": v,
                        "missing_fraction": 16 / 256} for method, vs in values.items() for i, v in enumerate(vs)])
    table = summary(df, "psnr")["d"]
    paired = compare(df, "a", "b", "psnr").iloc[0]
    assert table.at["a", "m"][0] > table.at["b", "m"][0] and paired["diff"] > 0 and paired["ci_low"] > 0
    assert paired["n"] == 16  # every image enters the paired statistics and the means alike
    assert math.isclose(paired["diff"], table.at["a", "m"][0] - table.at["b", "m"][0], rel_tol=1e-9)
    # the published convention written out: mean of per-image 10 log10(1 / max(MSE, 1e-10))
    by_hand = np.mean([10 * math.log10(1 / max(float(((x - t) ** 2).mean()), 1e-10)) for x, t in zip(a, truth)])
    assert math.isclose(table.at["a", "m"][0], by_hand, rel_tol=1e-12)
    text = format_tables(df, ["psnr"], "html")
    assert "<b>" + f"{table.at['a', 'm'][0]:.4f}" in text and "n = 16 images" in text
    assert "inf" not in missing_fraction_section(df, "psnr") and "0-10% missing" in missing_fraction_section(df, "psnr")


def test_the_header_counts_the_images_that_entered_and_no_mean_is_inf():
    from benchkit.report.tables import format_tables

    df = pd.DataFrame({"dataset": "d", "mask": "m", "method": "x", "image_id": range(5),
                       "psnr": [20.0, 21.0, np.inf, np.nan, 22.0], "missing_fraction": 0.2})
    text = format_tables(df, ["psnr"])
    assert "n = 3 images" in text and "21.0000" in text and "inf ±" not in text
    assert "left out of the means: 1 infinite and 1 missing values" in text


def test_the_report_bins_images_by_lama_s_rule():
    from benchkit.report.html import missing_fraction_section

    df = pd.DataFrame({"dataset": "d", "mask": "m", "method": "x", "image_id": range(3),
                       "psnr": [20.0, 30.0, 40.0], "missing_fraction": [0.2, 0.5, 1.0]})
    text = missing_fraction_section(df, "psnr")  # LaMa: searchsorted(side="right"), an area of 1 in the last bin
    for name, value in (("20-30%", 20.0), ("50-60%", 30.0), ("90-100%", 40.0)):
        assert f"{name} missing" in text and f"{value:.2f} (n=1)" in text
    assert "10-20%" not in text and "40-50%" not in text


def test_the_guide_s_step_three_after_the_readme_run_loses_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _export_and_predict(tmp_path, n=8)
    assert main(["run", "--methods", "mean-fill,tv", "--masks", "center", "--n-images", "4"]) == 0  # the README's
    cells = sorted((tmp_path / "results" / "default" / "cells").glob("*.json"))
    guide = (ROOT / "docs" / "guides" / "external-models.md").read_text()
    step = next(line for line in guide.splitlines() if line.startswith("benchkit run --methods \"predictions:P"))
    assert "--out" in step  # every command of the guide names its folder
    args = shlex.split(step.replace("P[", f"{folder}[").replace("64", "8"))[1:]
    capsys.readouterr()
    assert main(args) == 0
    capsys.readouterr()
    assert sorted((tmp_path / "results" / "default" / "cells").glob("*.json")) == cells
    # the same command without --out stops and offers a new folder first; --force deletes nothing either
    no_out = args[:args.index("--out")]
    for extra in ([], ["--force"]):
        assert main(no_out + extra) == 2
        err = capsys.readouterr().err
        assert "choose another --out" in err and "2 cells (mean-fill: 1, tv: 1)" in err and err.count("\n") == 1
        assert sorted((tmp_path / "results" / "default" / "cells").glob("*.json")) == cells


def test_only_replace_folder_deletes_and_it_says_what(tmp_path, capsys):
    run = ["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "2", "--metrics", "psnr",
           "--out", str(tmp_path / "R")]
    assert main(run) == 0 and main(run[:2] + ["tv"] + run[3:]) == 0  # two runs' cells in one folder
    assert len(list((tmp_path / "R" / "cells").glob("*.json"))) == 2
    assert main(run + ["--force"]) == 0  # redoes mean-fill's cell, keeps tv's
    assert len(list((tmp_path / "R" / "cells").glob("*.json"))) == 2
    capsys.readouterr()
    assert main([*run[:6], "3", *run[7:], "--replace-folder"]) == 0
    assert "note: --replace-folder removed 2 cells (mean-fill: 1, tv: 1) from" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "R" / "cells").glob("*.json")] == ["fashion-mnist-mini__center__mean-fill.json"]


def test_score_refuses_raw_output_metrics_and_never_wipes_stored_values(tmp_path, capsys, monkeypatch):
    run = ["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "3", "--out", str(tmp_path / "R")]
    assert main(run + ["--metrics", "psnr,known-l1"]) == 0
    cell = next((tmp_path / "R" / "cells").glob("*.json"))
    before = cell.read_bytes()
    capsys.readouterr()
    assert main(["score", str(tmp_path / "R"), "--metrics", "known-l1"]) == 2
    err = capsys.readouterr().err
    assert "metric 'known-l1' scores each method's raw output" in err and err.count("\n") == 1
    assert cell.read_bytes() == before

    from benchkit.builtins.metrics.pixel import PSNR

    def broken(self, prediction, target, known):
        raise RuntimeError("a broken network")

    monkeypatch.setattr(PSNR, "score", broken)
    assert main(["score", str(tmp_path / "R"), "--metrics", "psnr"]) == 1
    assert "its stored values are kept" in capsys.readouterr().out
    stored = json.loads(cell.read_text())
    assert stored["rows"]["psnr"] == json.loads(before)["rows"]["psnr"] and "psnr" not in stored["metric_errors"]


def test_a_run_that_adds_a_raw_output_metric_runs_the_method_again(tmp_path, capsys):
    run = ["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "3", "--out", str(tmp_path / "R")]
    assert main(run + ["--metrics", "psnr"]) == 0
    capsys.readouterr()
    assert main(run + ["--metrics", "psnr,known-l1"]) == 0
    out = capsys.readouterr().out
    assert "lacks known-l1, which scores the method's raw output: running the method again" in out
    df = benchkit.load_results(tmp_path / "R")
    assert benchkit.store.results.failures(tmp_path / "R").empty
    assert np.isfinite(df["known-l1"]).all() and (df["known-l1"] >= 0).all()


def _returning(name, make):
    class Returning(benchkit.plugin.interfaces.Method):
        def inpaint(self, images, known):
            return make(images, known)

    Returning.name = name
    return Returning


BAD_OUTPUTS = {
    "times-255": (lambda x, k: torch.where(k, x, 0.4) * 255, "values in [102, 102] in the hole, expected [0, 1]"),
    "constant-3": (lambda x, k: torch.full_like(x, 3.0), "values in [3, 3] in the hole, expected [0, 1]"),
    "negative": (lambda x, k: x - 0.5, "values in [-0.5, -0.5] in the hole"),
    "numpy": (lambda x, k: x.numpy(),
              "returned a numpy.ndarray, expected a float torch.Tensor of shape (2, 1, 16, 16)"),
    "uint8": (lambda x, k: (x * 255).to(torch.uint8), "returned torch.uint8 values, expected a float torch.Tensor"),
    "meta": (lambda x, k: x.to("meta"), "returned a tensor on meta, the batch is on cpu"),
    "nan": (lambda x, k: x / 0 * 0, "NaN or infinite values in the hole"),
    "one-image": (lambda x, k: x[:1], "returned shape (1, 1, 16, 16), expected (2, 1, 16, 16)"),
}


@pytest.mark.parametrize("name", list(BAD_OUTPUTS))
def test_a_method_s_bad_output_fails_its_cell_with_one_line_saying_what_came_back(tmp_path, name):
    from benchkit.plugin.registry import Registry
    from benchkit.run.runner import RunConfig, run
    from benchkit.store.results import failures

    make, message = BAD_OUTPUTS[name]

    class Plugins:
        @benchkit.hookimpl
        def register_methods(self, register):
            register(_returning(name, make))
            register(_returning("slight-overshoot", lambda x, k: torch.where(k, x, 1 + 1e-3)))

    registry = Registry(block_external=True, extra=[Plugins(), *conftest_plugins()])
    config = RunConfig(methods=[name, "slight-overshoot"], datasets=["tiny"], masks=["center"], n_images=2,
                       metrics=["psnr"], batch_size=2, out=tmp_path / "R")
    outcome = run(config, registry, show_progress=False)
    failed = failures(tmp_path / "R").set_index("method").error
    assert list(failed.index) == [name] and message in failed[name] and "\n" not in failed[name]
    assert len(outcome.failed) == 1  # within the stated tolerance: clamped, as rounding would
    overshoot = benchkit.load_results(tmp_path / "R")
    assert np.isfinite(overshoot.psnr).all() and len(overshoot) == 2


def conftest_plugins():
    from conftest import TestPlugins

    return [TestPlugins()]


@pytest.mark.parametrize("size", [25, 50, 100])
def test_dip_works_on_sizes_that_are_not_multiples_of_its_downsampling(size):
    from benchkit.builtins.methods.dip import DeepImagePrior, fit, levels_for, pad_to_multiple

    rng = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, size, size, generator=rng)
    known = torch.rand(2, 1, size, size, generator=rng) > 0.3
    method = DeepImagePrior(iterations=2, width=4)
    method.seed = 0
    out = method.inpaint(images * known, known, image_ids=(0, 1))
    assert out.shape == images.shape and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    # the padded problem written out: the same fit on the padded inputs, cropped by hand
    multiple = 2 ** levels_for(size)
    pad = -size % multiple
    padded, padded_known, _ = pad_to_multiple(images * known, known, multiple)
    assert padded.shape[-1] % multiple == 0 and padded.shape[-1] == size + pad
    assert not padded_known[..., :pad // 2, :].any() and torch.equal(
        padded_known[..., pad // 2:pad // 2 + size, pad // 2:pad // 2 + size], known)
    whole = fit(padded, padded_known, method.image_seeds(0, (0, 1)), 2, 0.01, 0.03, 4)
    torch.testing.assert_close(out, whole[..., pad // 2:pad // 2 + size, pad // 2:pad // 2 + size])


def test_a_closed_output_pipe_ends_the_run_as_an_interrupt(tmp_path):
    import os

    args = [sys.executable, "-m", "benchkit.cli", "run", "--methods", "mean-fill,tv", "--masks", "center,random",
            "--n-images", "8", "--metrics", "psnr", "--out", str(tmp_path / "R")]
    read_end, write_end = os.pipe()
    os.close(read_end)  # `benchkit run ... 2>&1 | head` after head has gone: every write fails with EPIPE
    result = subprocess.run(args, stdout=write_end, stderr=write_end)
    os.close(write_end)
    assert result.returncode == 141
    assert json.loads((tmp_path / "R" / "manifest.json").read_text())["status"] == "interrupted"
    kept = sorted(p.name for p in (tmp_path / "R" / "cells").glob("*.json"))
    assert kept == ["fashion-mnist-mini__center__mean-fill.json"]  # the cell finished before the first line
    rerun = subprocess.run(args, capture_output=True, text=True)
    assert rerun.returncode == 0 and "1 finished cells reused" in rerun.stdout
    log = rerun.stderr.splitlines()  # not a terminal: one line per cell, no carriage returns
    assert "\r" not in rerun.stderr and log == [
        f"benchkit: finished fashion-mnist-mini/{cell} ({n}/24 images done)"
        for cell, n in (("random/mean-fill", 8), ("center/tv", 16), ("random/tv", 24))]


def test_sixteen_bit_colour_predictions_are_read_at_full_depth(tmp_path):
    import cv2

    from benchkit.builtins.methods.predictions import Predictions, sixteen_bit_colour
    from benchkit.imaging import decode_into

    rgb = np.zeros((8, 8, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 40000, 1000, 65535  # no multiples of 257: 8 bits cannot hold them
    path = tmp_path / "p.png"
    assert cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR
    assert sixteen_bit_colour(path) and Image.open(path).mode == "RGB"  # what Pillow would cut to 8 bits
    reader = Predictions(str(tmp_path))
    reader.shape, reader.resize = (3, 8, 8), "none"
    decoded = torch.empty(1, 3, 8, 8)
    decode_into(decoded, 1, lambda row: reader.read(path))
    expected = torch.tensor([40000, 1000, 65535], dtype=torch.float64) / 65535
    torch.testing.assert_close(decoded[0, :, 0, 0], expected.float(), rtol=0, atol=0)
    assert reader._problem(path) is None
    reader.shape, reader.resize = (3, 16, 16), "bicubic"
    assert "16-bit colour PNG of 8x8" in reader._problem(path)


def test_predictions_for_a_folder_dataset_score_any_subset_and_refuse_changed_images(tmp_path, capsys):
    pytest.importorskip("cv2")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    dataset = f"folder:{photos}[size=16]"
    assert main(["export", "--datasets", dataset, "--masks", "center", "--n-images", "6", "--layout", "lama",
                 "--out", str(tmp_path / "E")]) == 0
    subprocess.run([sys.executable, str(ROOT / "examples" / "external_telea.py"), str(tmp_path / "E"),
                    str(tmp_path / "P")], check=True)
    run = ["run", "--datasets", dataset, "--masks", "center", "--metrics", "psnr", "--methods",
           f"predictions:{tmp_path / 'P'}[name=ext]"]
    assert main([*run, "--n-images", "6", "--out", str(tmp_path / "all")]) == 0
    assert main([*run, "--n-images", "3", "--out", str(tmp_path / "three")]) == 0  # the same images, fewer
    every, three = (benchkit.load_results(tmp_path / name).set_index("image_id").psnr for name in ("all", "three"))
    assert list(three.index) == [0, 1, 2] and three.equals(every.loc[[0, 1, 2]])
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(photos / "1.png")  # another photo
    capsys.readouterr()
    assert main([*run, "--n-images", "3", "--out", str(tmp_path / "changed")]) == 2
    err = capsys.readouterr().err
    assert "made for other images" in err and "image 1 and 0 more differ" in err
    assert not (tmp_path / "changed").exists()


def test_threads_are_a_run_setting_recorded_in_the_manifest(tmp_path, capsys, monkeypatch):
    import os

    from benchkit.run import plan as planning

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    notes: list[str] = []
    assert planning.worker_threads(None, 1, notes) == 4 and planning.worker_threads(None, 3, notes) == 1
    assert notes == []
    assert planning.worker_threads(3, 2, notes) == 3
    assert notes == ["2 workers x 3 threads = 6 threads on 4 cores: they will wait for each other; lower --threads "
                     "(or --workers)"]
    run = ["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "2", "--metrics", "psnr"]
    assert main([*run, "--out", str(tmp_path / "A"), "--threads", "1"]) == 0
    manifest = json.loads((tmp_path / "A" / "manifest.json").read_text())
    assert manifest["hardware"]["torch_threads"] == 1 and manifest["config"]["threads"] == 1
    assert torch.get_num_threads() == 1  # the shard ran with it
    assert main([*run, "--out", str(tmp_path / "B"), "--threads", "0"]) == 2
    assert "--threads 0 must be at least 1" in capsys.readouterr().err
    torch.set_num_threads(len(os.sched_getaffinity(0)))


def test_grids_show_every_method_of_the_folder_and_follow_its_cells(tmp_path):
    from benchkit.report.pictures import comparison_grid

    run = ["run", "--masks", "center", "--n-images", "4", "--metrics", "psnr", "--out", str(tmp_path / "R")]
    assert main([*run, "--methods", "mean-fill"]) == 0 and main([*run, "--methods", "tv"]) == 0
    grid = tmp_path / "R" / "grids" / "fashion-mnist-mini__center.png"
    _, labels = comparison_grid(tmp_path / "R", "fashion-mnist-mini", "center")
    assert labels == ["input", "tv", "mean-fill", "truth"]  # the later run's first, the earlier one's kept
    columns = Image.open(grid).size[0]
    assert main([*run, "--methods", "tv", "--masks", "random"]) == 0  # another pair: this grid is left alone
    assert Image.open(grid).size[0] == columns  # four columns, both methods
    assert main(["run", "--masks", "random", "--n-images", "2", "--metrics", "psnr", "--methods", "tv",
                 "--out", str(tmp_path / "R"), "--replace-folder"]) == 0  # the centre cells are gone: their grid too
    assert sorted(p.name for p in (tmp_path / "R" / "grids").glob("*.png")) == ["fashion-mnist-mini__random.png"]


def test_each_plugin_is_credited_to_the_distribution_that_registered_it(tmp_path, capsys):
    from benchkit.plugin.registry import Registry

    pytest.importorskip("benchkit_example")
    registry = Registry(block_external=False)
    assert registry.get("preset", "stripes-demo").distribution == "benchkit-example-plugin"
    assert registry.get("preset", "default").distribution == "benchkit"
    assert registry.get("method", "flat-fill").distribution == "benchkit-example-plugin"
    assert main(["run", "--preset", "stripes-demo", "--n-images", "2", "--out", str(tmp_path / "R")]) == 0
    plugins = json.loads((tmp_path / "R" / "manifest.json").read_text())["plugins"]
    assert plugins["preset stripes-demo"] == "benchkit-example-plugin" and plugins["preset default"] == "benchkit"
    capsys.readouterr()
    assert main(["info", "stripes-demo"]) == 0 and "(from benchkit-example-plugin)" in capsys.readouterr().out


def test_every_way_of_writing_a_folder_is_one_identity(tmp_path, monkeypatch):
    from benchkit.plugin.registry import Registry
    from benchkit.plugin.spec import Spec

    monkeypatch.chdir(tmp_path)
    registry = Registry(block_external=True)
    for kind, name in (("dataset", "folder"), ("mask", "file"), ("method", "predictions")):
        forms = [f"{name}:photos", f"{name}:./photos/", f"{name}:{tmp_path}/photos", f"{name}:sub/../photos"]
        assert {Spec.parse(form, kind).resolve(registry).canonical for form in forms} == {f"{name}:{tmp_path}/photos"}


def test_a_newcomer_s_friction(tmp_path, capsys, monkeypatch):
    from benchkit.plugin.registry import Registry

    # an unknown name matched case-insensitively
    with pytest.raises(benchkit.errors.UserError, match="did you mean 'tv'"):
        Registry(block_external=True).get("method", "TV")
    # --n-images beyond the dataset: capped, with a note
    run = ["run", "--methods", "mean-fill", "--masks", "center", "--metrics", "psnr", "--out", str(tmp_path / "R")]
    assert main([*run, "--n-images", "100000"]) == 0
    out = capsys.readouterr().out
    assert "note: --n-images 100000 is more than the 512 test images of 'fashion-mnist-mini': it runs on all 512" in out
    # the text report of an unfinished run says so
    manifest = json.loads((tmp_path / "R" / "manifest.json").read_text())
    (tmp_path / "R" / "manifest.json").write_text(json.dumps(manifest | {"status": "interrupted"}))
    assert main(["report", str(tmp_path / "R")]) == 0
    assert capsys.readouterr().out.startswith(f"note: the last run into {tmp_path / 'R'} is interrupted, not finished")


def test_a_broken_third_party_plugin_blocks_nothing_and_is_named(tmp_path, capsys, monkeypatch):
    site = tmp_path / "site"
    (site / "benchkit_broken-0.1.dist-info").mkdir(parents=True)
    (site / "throwaway_broken.py").write_text("raise ImportError('a missing dependency')\n")
    (site / "benchkit_broken-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: benchkit-broken\n"
                                                                    "Version: 0.1\n")
    (site / "benchkit_broken-0.1.dist-info" / "entry_points.txt").write_text("[benchkit]\nplugin = throwaway_broken\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("BENCHKIT_BLOCK_EXTERNAL_PLUGINS", raising=False)
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert "broken plugin (failed to import, left out): 'plugin' from 'benchkit-broken' (ImportError" in out
    assert "plugin 'plugin' from 'benchkit-broken' failed to import" in err and "mean-fill" in out
    with pytest.raises(SystemExit) as help_exit:
        main(["--help"])
    assert help_exit.value.code == 0
    assert main(["run", "--methods", "my-model", "--n-images", "2", "--out", str(tmp_path / "R")]) == 2
    assert "plugins that failed to import: 'plugin' from 'benchkit-broken'" in capsys.readouterr().err


def test_the_site_does_not_publish_its_build_hook():
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert "docs/hooks.py" in config["hooks"] and "hooks.py" in config["exclude_docs"].split()


def test_box_plot_ticks_stay_inside_the_plot_below_the_title():
    import re

    from benchkit.report.svgplot import HEIGHT, MARGIN, box_plot_svg

    svg = box_plot_svg({"a": np.array([0.0, 50.0, 95.0]), "b": np.array([10.0, 60.0])}, "d / m", "dB")
    title_y = float(re.search(r'<text x="[\d.]+" y="([\d.]+)" text-anchor="middle" font-weight="bold">', svg)[1])
    lines = [float(y) for y in re.findall(r'<line x1="56" x2="[\d.]+" y1="([\d.]+)"', svg)]
    assert lines and all(MARGIN["top"] <= y <= HEIGHT - MARGIN["bottom"] for y in lines)
    assert title_y + 4 < MARGIN["top"]  # the title's band is above every grid line
