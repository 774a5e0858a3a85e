"""Property-based fuzzing (hypothesis) of everything a user feeds benchkit.

The property, for every input: exit code 0, 1 or 2 (or a ``UserError`` from the Python API), never a
traceback, a bad input leaves nothing written, and a results folder that exists can still be read by
``load_results``. The examples are derandomised (the same in every CI run, so a red CI is a real
bug); ``BENCHKIT_FUZZ_RANDOM=1`` explores new ones, ``BENCHKIT_FUZZ_EXAMPLES=N`` sets how many.
Every distinct input tried is counted and the total printed at the end of the test session.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import benchkit
from benchkit.cli import main
from benchkit.errors import UserError
from benchkit.masking import make_masks
from benchkit.plugin.interfaces import MaskGenerator
from benchkit.plugin.options import option_specs
from benchkit.plugin.registry import Registry
from benchkit.run.validation import check_images

FUZZED: dict[str, set[str]] = {}  # test name -> distinct inputs tried (reported by conftest)
EXAMPLES = int(os.environ.get("BENCHKIT_FUZZ_EXAMPLES", "0"))
FUZZ = settings(deadline=None, derandomize=not os.environ.get("BENCHKIT_FUZZ_RANDOM"), database=None,
                suppress_health_check=list(HealthCheck))


def examples(n: int):
    return settings(FUZZ, max_examples=EXAMPLES or n)


def tried(test: str, value) -> None:
    FUZZED.setdefault(test, set()).add(repr(value))


# ----------------------------------------------------------------------------- the command line

WORDS = st.sampled_from(["", ",", " ", "nan", "inf", "-inf", "-1", "0", "1", "3", "1e309", "10**9", "9" * 30,
                         "true", "none", "é", "../..", "a:b", "x=y", "\x00"])
NUMBERS = st.one_of(st.integers(-3, 6).map(str), WORDS)
NAMES = st.sampled_from(["mean-fill", "tv", "nn", "lowrank", "biharmonic", "flat-fill", "mean-fil", "gan",
                         "center", "random", "pattern", "half", "stripes", "psnr", "ssim", "l1", "psnr_hole",
                         "fashion-mnist-mini", "folder:{photos}", "folder:{photos}/", "folder:{deep}",
                         "folder:{nowhere}", "file:{masks}", "file:{photos}", "tvv", "class-acc", "fid-fmnist",
                         "kid-fmnist", "fid", "lpips-alex", ""])
CHEAP_METHODS = st.lists(st.sampled_from(["mean-fill", "tv", "nn", "lowrank", "flat-fill", "mean-fil", "",
                                          "gan", " mean-fill"]), min_size=0, max_size=3)
OPTION_KEYS = st.sampled_from(["tv.max_iter", "tv.tol", "nn.chunk", "nn.blend", "lowrank.rank", "random.missing",
                               "pattern.blob", "pattern.low", "folder.size", "folder.mode", "gan.lr",
                               "gan.iterations", "flat-fill.value", "psnr.x", "tvv.max_iter", "center", ".", "a.b"])


@st.composite
def run_arguments(draw):
    args = ["run"]
    methods = draw(CHEAP_METHODS)
    args += ["-o", "gan.iterations=1"]  # keep gan cheap, whether named or one of the default methods
    if methods or draw(st.booleans()):
        args += ["--methods", ",".join(methods)]
    for flag in ("--masks", "--datasets", "--metrics"):
        if draw(st.booleans()):
            args += [flag, ",".join(draw(st.lists(NAMES, max_size=3)))]
    args += ["--n-images", draw(st.sampled_from(["2", "3", "0", "-1", "x", "4"]))]
    if args[-1] == "0":
        args += ["--datasets", "folder:{photos}"]  # "all" images, but of a small folder
    for flag in ("--seed", "--batch-size"):
        if draw(st.booleans()):
            args += [flag, draw(NUMBERS)]
    if draw(st.booleans()):
        args += ["--device", draw(st.sampled_from(["cpu", "meta", "cuda", "cpu:0", "gpu", ""]))]
    for _ in range(draw(st.integers(0, 3))):
        args += ["-o", f"{draw(OPTION_KEYS)}={draw(NUMBERS)}"]
    if draw(st.booleans()):
        args += ["--force"]
    return args


@pytest.fixture(scope="module")
def fuzz_files(tmp_path_factory):
    """Small image folders (8-bit colour, 16-bit gray), a mask folder, and the path of nothing."""
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    (root / "photos").mkdir()
    (root / "deep").mkdir()
    (root / "masks").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 17, 3), dtype=np.uint8)).save(root / "photos" / f"{i}.png")
        Image.fromarray(rng.integers(0, 65536, (16, 16), dtype=np.uint16)).save(root / "deep" / f"{i}.png")
        Image.fromarray((rng.random((8, 8)) < 0.4).astype(np.uint8) * 255).save(root / "masks" / f"{i}.png")
    return {"photos": root / "photos", "deep": root / "deep", "masks": root / "masks", "nowhere": root / "none"}


def run_cli(args: list[str], cwd: Path) -> tuple[int, str, str]:
    import contextlib

    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse: a flag's value of the wrong type
                code = exc.code
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def check_outcome(args, code, out, err, results: Path, existed: bool) -> None:
    assert code in (0, 1, 2), (args, code, err)
    assert "Traceback" not in err and "internal error" not in err, (args, err)
    if code == 2 and not existed:
        assert not results.exists(), (args, "partial output after a bad input", err)
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("benchkit: error: ")]
        assert len(errors) == 1 or "usage:" in err, (args, err)
    if (results / "manifest.json").exists():
        benchkit.load_results(results)  # still readable


@examples(120)
@given(args=run_arguments())
def test_fuzz_run_command_line(fuzz_files, tmp_path_factory, args):
    args = [a.format(**fuzz_files) for a in args]
    tried("run command line", args)
    work = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        code, out, err = run_cli(args, work)
        check_outcome(args, code, out, err, work / "results" / "default", existed=False)
        if code in (0, 1):  # the same command again resumes: nothing to redo, same exit code
            again, _, err2 = run_cli(args, work)
            assert again == code and "Traceback" not in err2, (args, err2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- results folders

JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=True),
                                     st.text(max_size=4)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("finished")
    assert run_cli(["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "2", "--out", "r",
                    "--metrics", "psnr,ssim,fid-fmnist"], work)[0] == 0
    return work / "r"


@examples(60)
@given(target=st.sampled_from(["manifest", "cell", "npz"]), mode=st.sampled_from(["json", "bytes", "field", "delete"]),
       value=JSON_VALUES, field=st.sampled_from(["status", "rows", "settings", "config", "hardware", "dataset",
                                                 "psnr", "image_id", "history", "set_scores", "settings.seed",
                                                 "settings.n_images", "settings.dataset_options", "metric_errors",
                                                 "config.options", "sample_ids", "duplicate image_id"]),
       raw=st.binary(max_size=40))
def test_fuzz_corrupt_results_folder(finished_run, tmp_path_factory, target, mode, value, field, raw):
    tried("results folder", (target, mode, value, field, raw))
    work = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    run_dir = work / "r"
    shutil.copytree(finished_run, run_dir)
    path = {"manifest": run_dir / "manifest.json", "cell": next((run_dir / "cells").glob("*.json")),
            "npz": next((run_dir / "cells").glob("*.npz"))}[target]
    if mode == "delete":
        path.unlink()
    elif mode == "bytes" or target == "npz":
        path.write_bytes(raw)
    elif mode == "json":
        path.write_text(json.dumps(value))
    else:
        record = json.loads(path.read_text())
        rows = record.get("rows") if isinstance(record.get("rows"), dict) else {}
        if field == "duplicate image_id":  # every column consistent, one image twice
            for values in rows.values():
                values.append(values[0])
        elif "." in field:  # a nested field of the wrong type
            outer, inner = field.split(".")
            if isinstance(record.get(outer), dict):
                record[outer][inner] = value
        else:
            (rows if field in rows else record)[field] = value
        path.write_text(json.dumps(record))
    try:
        for args in (["report", "r"], ["report", "r", "--html"], ["score", "r", "--metrics", "ssim,kid-fmnist"],
                     ["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "2", "--out", "r"],
                     ["run", "--methods", "mean-fill", "--masks", "center", "--n-images", "2", "--out", "r",
                      "--force"]):
            code, out, err = run_cli(args, work)
            assert code in (0, 1, 2) and "Traceback" not in err and "internal error" not in err, (args, err)
        assert code == 0, err  # --force always repairs the folder
        benchkit.load_results(run_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- validators


@examples(200)
@given(shape=st.lists(st.integers(0, 5), min_size=0, max_size=5),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.uint8, torch.int64, torch.bool]),
       fill=st.sampled_from(["rand", "nan", "inf", "big", "negative", "zeros"]))
def test_fuzz_image_validator(shape, dtype, fill):
    tried("image tensors", (shape, dtype, fill))
    images = torch.rand(shape, dtype=torch.float64)
    images = {"nan": images.masked_fill(images < 0.3, float("nan")), "inf": images / 0, "big": images * 300,
              "negative": -images, "zeros": images * 0, "rand": images}[fill]
    try:
        images = images.to(dtype)
    except RuntimeError:
        return
    try:
        check_images(images, "fuzz")
    except UserError:
        return
    assert images.ndim == 4 and images.is_floating_point() and images.numel() > 0
    assert float(images.min()) >= 0 and float(images.max()) <= 1


class ArrayMask(MaskGenerator):
    name = "fuzz-array"

    def __init__(self, array=None):
        self.array = array

    def known(self, height, width, *, index, rng):
        return self.array


@examples(200)
@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=3),
       dtype=st.sampled_from([bool, np.uint8, np.int32, np.float32, np.float64, object]),
       fill=st.sampled_from(["random", "ones", "zeros", "twos", "nan", "half"]))
def test_fuzz_mask_validator(shape, dtype, fill):
    tried("mask arrays", (shape, np.dtype(dtype).name, fill))
    rng = np.random.default_rng(len(shape))
    base = {"random": rng.random(shape) < 0.5, "ones": np.ones(shape), "zeros": np.zeros(shape),
            "twos": np.full(shape, 2.0), "nan": np.full(shape, np.nan),
            "half": np.arange(int(np.prod(shape))).reshape(shape) % 2}[fill]
    array = np.asarray(base).astype(dtype)
    try:
        known = make_masks(ArrayMask(array), "d", "m", [0, 1], 4, 5, 0)
    except UserError:
        return
    assert known.dtype == torch.bool and known.shape == (2, 1, 4, 5)
    assert (~known).flatten(1).any(1).all() and known.flatten(1).any(1).all()


BUILTINS = Registry(block_external=True)
PLUGIN_OPTIONS = [(info.kind, info.name, key) for info in BUILTINS.all() if info.kind != "preset"
                  for key in option_specs(info.cls) if key not in ("path", "folder", "data_dir")]


@examples(300)
@given(target=st.sampled_from(PLUGIN_OPTIONS), value=st.one_of(WORDS, st.text(max_size=6),
                                                               st.floats().map(repr), st.integers().map(str)))
def test_fuzz_plugin_options(target, value):
    kind, name, key = target
    tried("plugin options", (name, key, value))
    try:
        plugin = BUILTINS.create(kind, name, {key: value})
    except UserError:
        return
    converted = getattr(plugin, key, None)
    if isinstance(converted, float):
        assert np.isfinite(converted)


@st.composite
def image_files(draw):
    kind = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16", "I", "F", "LA", "CMYK", "garbage", "empty"]))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    suffix = draw(st.sampled_from([".png", ".tif", ".jpg", ".bmp", ".webp"]))
    return kind, h, w, suffix, draw(st.integers(0, 2**16))


def write_image(path: Path, kind: str, h: int, w: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    if kind in ("garbage", "empty"):
        path.write_bytes(rng.bytes(seed % 64) if kind == "garbage" else b"")
        return path
    if kind == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif kind == "I":
        image = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.int32))
    elif kind == "F":
        image = Image.fromarray(rng.random((h, w), dtype=np.float32) * (2 if seed % 2 else 1))
    else:
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(kind)
    try:
        image.save(path)
    except (OSError, ValueError, KeyError):  # a format that cannot store this mode
        path.write_bytes(b"")
    return path


@examples(150)
@given(files=st.lists(image_files(), min_size=1, max_size=3), size=st.integers(1, 24),
       mode=st.sampled_from(["RGB", "L"]))
def test_fuzz_image_files(tmp_path_factory, files, size, mode):
    tried("image files", (files, size, mode))
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    for i, (kind, h, w, suffix, seed) in enumerate(files):
        write_image(folder / f"{i}{suffix}", kind, h, w, seed)
    dataset = Registry(block_external=True).create("dataset", f"folder:{folder}", {"size": str(size), "mode": mode})
    try:
        images = dataset.images("test")
    except UserError:
        return
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert images.dtype == torch.float32 and images.shape == (len(files), 3 if mode == "RGB" else 1, size, size)
    check_images(images, "fuzzed folder")


# ----------------------------------------------------------------------------- valid runs, every command

VALID_METHODS = ["mean-fill", "tv", "flat-fill", "lowrank", "nn"]
VALID_MASKS = ["center", "random", "half", "pattern"]
VALID_METRICS = ["psnr", "ssim", "l1", "psnr_hole", "kid-fmnist", "fid-fmnist", "class-acc"]


@st.composite
def valid_runs(draw):
    """A valid run of a random shape: any non-empty subsets of methods, masks and metrics (runs
    without psnr or ssim, and runs with set metrics only, among them) on one or two datasets."""
    methods = draw(st.lists(st.sampled_from(VALID_METHODS), min_size=1, max_size=3, unique=True))
    masks = draw(st.lists(st.sampled_from(VALID_MASKS), min_size=1, max_size=2, unique=True))
    metrics = draw(st.lists(st.sampled_from(VALID_METRICS), min_size=1, max_size=3, unique=True))
    datasets = ["fashion-mnist-mini"]
    if "nn" not in methods and not set(metrics) & {"kid-fmnist", "fid-fmnist", "class-acc"} and draw(st.booleans()):
        datasets = draw(st.sampled_from([["folder:{photos}"], ["fashion-mnist-mini", "folder:{photos}"]]))
    n = draw(st.integers(2, 4))
    args = ["run", "--methods", ",".join(methods), "--masks", ",".join(masks), "--metrics", ",".join(metrics),
            "--datasets", ",".join(datasets), "--n-images", str(n), "-o", "kid-fmnist.subset_size=2",
            "-o", "folder.size=16", "--out", "r"]
    extra = draw(st.sampled_from([m for m in VALID_METRICS if m not in metrics] or ["psnr"]))
    return args, methods, extra


@examples(24)
@given(shape=valid_runs())
def test_fuzz_every_command_on_a_valid_run(fuzz_files, tmp_path_factory, shape):
    args, methods, extra = shape
    args = [a.format(**fuzz_files) for a in args]
    tried("valid run, every command", args)
    work = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        code, out, err = run_cli(args, work)
        assert code == 0, (args, err)
        if "folder:" in " ".join(args) and extra in ("kid-fmnist", "fid-fmnist", "class-acc"):
            extra = "psnr"  # labelled metrics need the labelled dataset
        for command in (["report", "r"], ["report", "r", "--format", "latex"], ["report", "r", "--format", "csv"],
                        ["report", "r", "--html"], ["report", "r", "--html", "--errors"],
                        ["score", "r", "--metrics", extra], args):
            code, out, err = run_cli(command, work)
            assert code == 0 and "Traceback" not in err and "internal error" not in err, (args, command, err)
        df = benchkit.load_results(work / "r")
        sets = benchkit.load_results(work / "r", level="set")
        assert len(df) and set(df.method) == set(methods)
        assert len(sets) == 0 or set(sets.method) <= set(methods)
        per_image = benchkit.store.results.metric_columns(df)
        if len(methods) > 1 and per_image:
            table = benchkit.compare(df, methods[0], methods[1], metrics=per_image[0])
            assert set(table.metric) <= {per_image[0]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- prediction folders

@pytest.fixture(scope="module")
def exported_predictions(tmp_path_factory):
    """An export of 6 images x 2 masks in each layout, and predictions of it (the ground truth itself)."""
    root = tmp_path_factory.mktemp("predictions")
    folders = {}
    for layout in ("benchkit", "lama", "repaint"):
        export = root / f"export-{layout}"
        assert main(["export", "--masks", "center,thick", "--n-images", "6", "--layout", layout,
                     "--out", str(export)]) == 0
        manifest = json.loads((export / "manifest.json").read_text())
        prediction = {"benchkit": "{}.png", "lama": "{}_mask000.png", "repaint": "inpainted/{}.png"}[layout]
        truth = "{}.png" if layout == "lama" else "gt/{}.png"
        clean = root / f"predictions-{layout}"
        for cell in manifest["cells"]:
            for image_id in cell["image_ids"]:
                target = clean / cell["folder"] / prediction.format(f"{image_id:05d}")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(export / cell["folder"] / truth.format(f"{image_id:05d}"), target)
        shutil.copy(export / "manifest.json", clean / "manifest.json")
        folders[layout] = clean
    return folders


PREDICTION_FAULTS = ["none", "delete", "extra", "resize", "truncate", "garbage", "16-bit", "colour", "rgba",
                     "jpeg", "manifest-json", "manifest-seed", "manifest-delete", "empty"]


def apply_fault(folder: Path, path: Path, fault: str) -> None:
    """Damage one prediction file (or the folder's manifest) in the way ``fault`` names."""
    if fault == "delete":
        path.unlink()
    elif fault == "extra":
        shutil.copy(path, path.with_name("99999" + path.name[5:]))
    elif fault == "resize":
        Image.open(path).resize((20, 20)).save(path)
    elif fault == "truncate":
        path.write_bytes(path.read_bytes()[:30])
    elif fault == "garbage":
        path.write_bytes(b"not an image at all")
    elif fault == "16-bit":
        Image.fromarray(np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 257).save(path)
    elif fault == "colour":
        gray = np.asarray(Image.open(path).convert("L"))
        Image.fromarray(np.stack([gray, 255 - gray, gray], -1)).save(path)
    elif fault == "rgba":
        Image.open(path).convert("RGBA").save(path)
    elif fault == "jpeg":
        Image.open(path).convert("L").save(path.with_suffix(".jpg"))
        path.unlink()
    elif fault == "manifest-json":
        (folder / "manifest.json").write_text("{broken")
    elif fault == "manifest-seed":
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps(manifest | {"seed": 3}))
    elif fault == "manifest-delete":
        (folder / "manifest.json").unlink()
    elif fault == "empty":
        path.write_bytes(b"")


@examples(60)
@given(layout=st.sampled_from(["benchkit", "lama", "repaint"]),
       faults=st.lists(st.tuples(st.sampled_from(PREDICTION_FAULTS), st.integers(0, 11)), min_size=0, max_size=3),
       n_images=st.sampled_from([3, 6, 7]))
def test_fuzz_prediction_folders(exported_predictions, tmp_path_factory, layout, faults, n_images):
    tried("prediction folder", (layout, faults, n_images))
    work = tmp_path_factory.mktemp("pred")
    folder = work / "P"
    shutil.copytree(exported_predictions[layout], folder)
    files = sorted(p for p in folder.rglob("*.png"))
    for fault, which in faults:
        try:
            apply_fault(folder, files[which % len(files)], fault)
        except Exception:  # this fault cannot be made on what earlier faults left (a garbage file ...)
            continue
    results = work / "R"
    args = ["run", "--methods", f"predictions:{folder}[name=model],mean-fill", "--masks", "center,thick",
            "--n-images", str(n_images), "--metrics", "psnr", "--out", str(results)]
    code, out, err = run_cli(args, work)
    check_outcome(args, code, out, err, results, existed=False)
    if all(f in ("none", "16-bit", "jpeg") for f, _ in faults) and n_images <= 6:
        assert code == 0, (faults, err)  # undamaged, or damaged only in ways benchkit reads
