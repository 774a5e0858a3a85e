"""One spec type (kind, name, argument, inline options) is the identity of a run's entries;
one reuse key (a content hash of the task) decides what a rerun keeps."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import benchkit
from benchkit.errors import UserError
from benchkit.plugin.registry import Registry
from benchkit.plugin.spec import Spec, split_list
from benchkit.run.inputs import Inputs
from benchkit.run.plan import plan
from benchkit.run.resolve import resolve
from benchkit.run.runner import RunConfig, run
from benchkit.store.results import load_results

OLD_RUN = Path(__file__).parent / "data" / "run-0.1.0"  # written by benchkit 0.1.0 before specs had options
KEYS = ["dataset", "mask", "method", "image_id"]

def plan_of(config, registry):
    """The plan of a run configuration: resolved, then planned with a new Inputs."""
    return plan(resolve(config, registry), Inputs(registry))



@pytest.fixture(scope="module")
def builtins():
    return Registry(block_external=True)


@pytest.mark.parametrize("text, expected", [
    ("gan", ("gan", None, ())),
    ("gan[iterations=300]", ("gan", None, (("iterations", "300"),))),
    ("tv[tol=1e-3, max_iter=5]", ("tv", None, (("max_iter", "5"), ("tol", "1e-3")))),
    ("folder:/data/photos[size=64]", ("folder", "/data/photos", (("size", "64"),))),
    ("folder:/data/a:b", ("folder", "/data/a:b", ())),
    ("file:masks/", ("file", "masks/", ())),
])
def test_parse(text, expected):
    spec = Spec.parse(text, "method")
    assert (spec.name, spec.argument, spec.options) == expected


@pytest.mark.parametrize("text, message", [
    ("gan[iterations=300", "without its ']'"),
    ("gan]", "without its '['"),
    ("gan[iterations]", "is not KEY=VALUE"),
    ("gan[iterations=1,iterations=2]", "twice"),
    ("[iterations=1]", "has no name"),
])
def test_malformed_specs_are_one_line(text, message):
    with pytest.raises(UserError, match=re.escape(message)):
        Spec.parse(text, "method")


def test_lists_split_outside_brackets():
    assert split_list("gan[iterations=300,lr=0.01],gan, tv[tol=1e-3]") == [
        "gan[iterations=300,lr=0.01]", "gan", "tv[tol=1e-3]"]
    assert split_list(r"folder:/data/photos\, 2023,center") == ["folder:/data/photos, 2023", "center"]
    assert split_list(",") == []


@pytest.mark.parametrize("text, fill, canonical", [
    ("tv", {}, "tv"),
    ("tv[max_iter=3000]", {}, "tv"),  # the default: the same spec as the bare name
    ("tv[tol=1e-3]", {}, "tv[tol=0.001]"),  # converted by the option's type
    ("tv[tol=1e-3,max_iter=5]", {}, "tv[max_iter=5,tol=0.001]"),  # sorted
    ("tv[max_iter=5]", {"max_iter": "7", "tol": "0.01"}, "tv[max_iter=5,tol=0.01]"),  # -o fills only what is unset
    ("tv", {"max_iter": "7"}, "tv[max_iter=7]"),
    ("random[missing=0.8]", {}, "random"),
])
def test_canonical_strings(builtins, text, fill, canonical):
    kind = "method" if text.startswith("tv") else "mask"
    assert Spec.parse(text, kind).resolve(builtins, fill).canonical == canonical


def test_canonical_strings_parse_back_to_themselves(builtins):
    spec = Spec.parse("tv[tol=1e-3,max_iter=5]", "method").resolve(builtins)
    again = Spec.parse(spec.canonical, "method").resolve(builtins)
    assert again == spec and again.canonical == spec.canonical


@pytest.mark.parametrize("text, message", [
    ("tv[maxiter=5]", "did you mean 'max_iter'"),
    ("tv[max_iter=0]", "out of range"),
    ("tv[tol=nan]", "finite"),
    ("tv:somewhere", "takes no ':' argument"),
    ("tvv[max_iter=5]", "did you mean 'tv'"),
])
def test_bad_inline_options_name_the_problem(builtins, text, message):
    with pytest.raises(UserError, match=re.escape(message)):
        Spec.parse(text, "method").resolve(builtins)


def test_variants_are_rows_and_a_changed_variant_redoes_only_its_cells(tmp_path, builtins):
    config = RunConfig(methods=["mean-fill", "tv[max_iter=5]", "tv"], masks=["center", "random"], n_images=4,
                       metrics=["psnr"], out=tmp_path / "r", options={"tv": {"tol": "0.01"}})
    first = run(config, builtins, show_progress=False)
    methods = {"mean-fill", "tv[max_iter=5,tol=0.01]", "tv[tol=0.01]"}
    assert {key[2] for key in first.plan.keys} == methods and len(first.ran) == 6
    assert set(load_results(config.out).method) == methods
    config.methods = ["mean-fill", "tv[max_iter=6]", "tv"]
    second = run(config, builtins, show_progress=False)
    assert sorted((r.mask, r.method) for r in second.ran) == [("center", "tv[max_iter=6,tol=0.01]"),
                                                               ("random", "tv[max_iter=6,tol=0.01]")]
    assert len(second.skipped) == 4


def test_the_same_spec_twice_is_one_entry_with_a_note(tmp_path, builtins):
    config = RunConfig(methods=["tv", "tv[max_iter=3000]", "mean-fill"], masks=["center"], n_images=2,
                       metrics=["psnr"], out=tmp_path / "r")
    planned = plan_of(config, builtins)
    assert [key[2] for key in planned.keys] == ["tv", "mean-fill"]
    assert any("'tv' is named twice" in note for note in planned.notes)


def test_task_keys_ignore_batch_size_and_executor_but_not_options(tmp_path, builtins):
    base = dict(methods=["tv[max_iter=5]"], masks=["center"], n_images=4, metrics=["psnr"], out=tmp_path / "r")
    key = plan_of(RunConfig(**base), builtins).cells[0].record.settings["task_key"]
    assert key == plan_of(RunConfig(batch_size=1, executor="processes", **base), builtins).cells[0].record.settings[
        "task_key"]
    assert key != plan_of(RunConfig(**base | {"methods": ["tv[max_iter=6]"]}), builtins).cells[0].record.settings[
        "task_key"]
    assert key != plan_of(RunConfig(seed=1, **base), builtins).cells[0].record.settings["task_key"]


def test_variants_give_the_same_numbers_on_every_executor_and_shard_size(tmp_path, builtins):
    common = dict(methods=["mean-fill", "tv[max_iter=20]", "tv[max_iter=40]"], masks=["center", "random"],
                  n_images=12, metrics=["psnr", "ssim"])
    run(RunConfig(out=tmp_path / "a", **common), builtins, show_progress=False)
    run(RunConfig(out=tmp_path / "b", shard_size=5, **common), builtins, show_progress=False)
    run(RunConfig(out=tmp_path / "c", shard_size=32, executor="processes", executor_options={"workers": 2},
                  **common), builtins, show_progress=False)
    tables = [load_results(tmp_path / x).sort_values(KEYS).reset_index(drop=True).drop(columns="seconds")
              for x in "abc"]
    assert len(tables[0]) == 3 * 2 * 12 and tables[0].method.nunique() == 3
    for other in tables[1:]:
        assert tables[0].equals(other)


def test_a_results_folder_of_benchkit_0_1_loads_reports_and_scores(tmp_path):
    df = benchkit.load_results(OLD_RUN)
    assert set(df.method) == {"mean-fill", "tv"} and len(df) == 2 * 2 * 6
    sets = benchkit.load_results(OLD_RUN, level="set")
    assert len(sets) == 4 and sets["fid-fmnist"].notna().all()
    copy = tmp_path / "old"
    shutil.copytree(OLD_RUN, copy)
    report = subprocess.run([sys.executable, "-m", "benchkit.cli", "report", str(copy)], capture_output=True,
                            text=True)
    assert report.returncode == 0 and "tv" in report.stdout, report.stderr
    html = subprocess.run([sys.executable, "-m", "benchkit.cli", "report", str(copy), "--html"], capture_output=True,
                          text=True)
    assert html.returncode == 0 and (copy / "report.html").is_file(), html.stderr
    scored = subprocess.run([sys.executable, "-m", "benchkit.cli", "score", str(copy), "--metrics", "l1"],
                            capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr
    after = benchkit.load_results(copy).set_index(KEYS)
    assert after["l1"].notna().all() and np.allclose(after.psnr, df.set_index(KEYS).psnr)
    # score rebuilt the masks as 0.1 made them (tv's came with -o tv.max_iter=20): the hole L1 it stored
    # equals the one computed by hand from the pictures and masks that 0.1 kept beside each cell
    for cell in (copy / "cells").glob("*.npz"):
        dataset, mask, method = cell.stem.split("__")
        kept = np.load(cell)
        for i, image_id in enumerate(kept["ids"]):
            hole = ~kept["known"][i].astype(bool).repeat(kept["truth"].shape[1], 0)
            error = np.abs(kept["samples"][i].astype(float) - kept["truth"][i]) / 255
            assert after.at[(dataset, mask, method, image_id), "l1"] == pytest.approx(error[hole].mean(), abs=1e-6)
