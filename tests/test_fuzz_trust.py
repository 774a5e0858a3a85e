"""Property-based fuzzing of the shapes that once gave silent wrong answers: files changed between
runs, exact and near-exact fills, scoring after a run with raw-output metrics, and out-of-range
plugin outputs. Derandomised and counted as the rest of the fuzz suite (tests/test_fuzz.py)."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_fuzz import examples, tried

import benchkit
from benchkit.cli import main
from benchkit.plugin.interfaces import Method
from benchkit.plugin.registry import Registry
from benchkit.run.runner import RunConfig, run
from benchkit.run.validation import OUTPUT_TOLERANCE

BOXES = st.tuples(st.integers(0, 28), st.integers(0, 28), st.integers(1, 16), st.integers(1, 16))


def _mask(box) -> np.ndarray:
    top, left, height, width = box
    image = np.zeros((32, 32), np.uint8)
    image[top:top + height, left:left + width] = 255  # white = missing
    return image


def _results(folder: Path) -> pd.DataFrame:
    return benchkit.load_results(folder).sort_values(["mask", "image_id"]).reset_index(drop=True)


@examples(15)
@given(boxes=st.lists(BOXES, min_size=1, max_size=3),
       changes=st.lists(st.one_of(st.none(), st.just("touch"), BOXES), min_size=3, max_size=3))
def test_fuzz_changed_mask_files_between_runs(tmp_path_factory, boxes, changes):
    """A rerun after mask files changed gives what a fresh run gives, never a stale cell."""
    tried("changed files", (boxes, changes))
    work = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        masks = work / "m"
        masks.mkdir()
        for i, box in enumerate(boxes):
            Image.fromarray(_mask(box)).save(masks / f"{i}.png")
        run = ["run", "--methods", "mean-fill", "--masks", f"file:{masks}", "--n-images", "3", "--metrics", "psnr"]
        assert main([*run, "--out", str(work / "A")]) == 0
        for i, change in enumerate(changes[:len(boxes)]):
            path = masks / f"{i}.png"
            if change == "touch":  # the same bytes, a new time: nothing to redo
                os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
            elif change is not None:
                Image.fromarray(_mask(change)).save(path)
        assert main([*run, "--out", str(work / "A")]) == 0
        assert main([*run, "--out", str(work / "B")]) == 0
        pd.testing.assert_frame_equal(_results(work / "A").drop(columns="seconds"),
                                      _results(work / "B").drop(columns="seconds"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


FILLS = st.one_of(st.just(("exact", 0.0)), st.tuples(st.just("near"), st.integers(3, 9)),
                  st.tuples(st.just("noise"), st.floats(0.01, 0.3)))


@examples(40)
@given(fills=st.lists(st.tuples(FILLS, FILLS), min_size=2, max_size=12), seed=st.integers(0, 2**16))
def test_fuzz_exact_and_near_exact_fills(fills, seed):
    """Whatever mix of exact, near-exact and noisy fills: every image enters the means, the table's
    order is the paired mean difference's sign, and no mean is printed as inf."""
    from benchkit.builtins.metrics.pixel import psnr
    from benchkit.report.stats import compare
    from benchkit.report.tables import format_tables
    from benchkit.store.results import summary

    tried("exact fills", (fills, seed))
    rng = np.random.default_rng(seed)
    truth = torch.from_numpy(rng.uniform(0, 1, (len(fills), 1, 8, 8)))

    def fill(kind) -> torch.Tensor:
        name, size = kind
        if name == "exact":
            return torch.zeros(8, 8, dtype=torch.float64)
        scale = 10.0 ** -size if name == "near" else size
        return torch.from_numpy(rng.normal(0, scale, (8, 8)))

    rows = []
    for method, column in (("a", 0), ("b", 1)):
        filled = truth + torch.stack([fill(pair[column]) for pair in fills])[:, None]
        rows += [{"dataset": "d", "mask": "m", "method": method, "image_id": i, "psnr": float(v)}
                 for i, v in enumerate(psnr(filled, truth))]
    df = pd.DataFrame(rows)
    assert np.isfinite(df.psnr).all()
    table = summary(df, "psnr")["d"]
    paired = compare(df, "a", "b", "psnr")
    difference = table.at["a", "m"][0] - table.at["b", "m"][0]
    assert paired.n.iloc[0] == len(fills) and math.isclose(paired["diff"].iloc[0], difference, abs_tol=1e-9)
    text = format_tables(df, ["psnr"])
    assert f"n = {len(fills)} images" in text and "inf" not in text


RUN_METRICS = ["psnr", "ssim", "l1", "known-l1", "known-psnr"]


@examples(10)
@given(ran=st.lists(st.sampled_from(RUN_METRICS), min_size=1, max_size=4, unique=True),
       scored=st.lists(st.sampled_from(RUN_METRICS), min_size=1, max_size=3, unique=True))
def test_fuzz_score_after_a_run(tmp_path_factory, ran, scored):
    """`benchkit score` after a run never wipes a stored value, and refuses raw-output metrics
    before writing anything."""
    tried("score after run", (ran, scored))
    work = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        out = work / "R"
        assert main(["run", "--methods", "tv", "--masks", "center", "--n-images", "3", "--metrics", ",".join(ran),
                     "--out", str(out)]) == 0
        cell = next((out / "cells").glob("*.json"))
        before = json.loads(cell.read_text())["rows"]
        code = main(["score", str(out), "--metrics", ",".join(scored)])
        after = json.loads(cell.read_text())["rows"]
        if {"known-l1", "known-psnr"} & set(scored):
            assert code == 2 and after == before
        else:
            assert code == 0
            for name in ran:
                assert all(v is not None and math.isfinite(v) for v in after[name])
            for name in set(ran) - set(scored):
                assert after[name] == before[name]
    finally:
        shutil.rmtree(work, ignore_errors=True)


OUTPUTS = st.fixed_dictionaries({
    "scale": st.sampled_from([1.0, 255.0, -1.0, 1.001, 1.01, 0.5]), "offset": st.sampled_from([0.0, 0.5, 3.0, -0.001]),
    "dtype": st.sampled_from(["float32", "float64", "float16", "uint8", "int64"]),
    "container": st.sampled_from(["tensor", "numpy", "list"]), "nan": st.booleans()})


@examples(40)
@given(how=OUTPUTS)
def test_fuzz_plugin_outputs(tmp_path_factory, how):
    """A plugin's output either passes the checks written out here (a floating tensor, finite and
    within [0, 1] up to the tolerance in the hole) and scores, or fails its cell with one line."""
    tried("plugin outputs", how)

    class Shaped(Method):
        name = "shaped"

        def inpaint(self, images, known):
            value = torch.where(known, images, 0.6) * how["scale"] + how["offset"]
            if how["nan"]:
                value = torch.where(known, value, torch.nan)
            value = value.to(getattr(torch, how["dtype"])) if not how["dtype"].startswith("uint") or not how["nan"] \
                else value.nan_to_num().clamp(0, 255).to(torch.uint8)
            return {"tensor": value, "numpy": value.numpy(), "list": value.tolist()}[how["container"]]

    class Plugins:
        @benchkit.hookimpl
        def register_methods(self, register):
            register(Shaped)

    hole = 0.6 * how["scale"] + how["offset"]
    floating = how["dtype"].startswith("float")
    if how["dtype"] == "float16":
        hole = float(torch.tensor(hole, dtype=torch.float16))
    valid = (how["container"] == "tensor" and floating and not how["nan"]
             and -OUTPUT_TOLERANCE <= hole <= 1 + OUTPUT_TOLERANCE)
    work = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        outcome = run(RunConfig(methods=["shaped"], masks=["center"], n_images=2, metrics=["psnr"], batch_size=2,
                                out=work / "R"), Registry(block_external=True, extra=[Plugins()]), show_progress=False)
        record = outcome.ran[0]
        if valid:
            assert record.ok and all(math.isfinite(v) for v in record.rows["psnr"])
        else:
            assert not record.ok and record.error.startswith("method returned") and "\n" not in record.error
    finally:
        shutil.rmtree(work, ignore_errors=True)
