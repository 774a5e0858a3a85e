"""Every command on every results folder, and the inputs a new user tried.

Each test names the item of the issue it covers ("new user N" for the list "Found by a new user").
"""
import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import benchkit
from benchkit import files
from benchkit.cli import main

BENCHKIT = [sys.executable, "-m", "benchkit.cli"]


from test_reliability import cli, photos  # noqa: E402  (the helpers of issue 10's tests)


@pytest.fixture(scope="module")
def l1_run(tmp_path_factory):
    """The plain sequence of the issue: a valid run without psnr."""
    out = tmp_path_factory.mktemp("l1") / "R"
    assert main(["run", "--methods", "mean-fill,tv", "--masks", "center", "--metrics", "l1", "--n-images", "4",
                 "--out", str(out)]) == 0
    return out


# 17 (and What to build 1): every report of a valid run without psnr
@pytest.mark.parametrize("args", [["--html"], ["--html", "--errors"], ["--format", "latex"], ["--format", "csv"], []])
def test_every_report_of_a_run_without_psnr(l1_run, capsys, args):
    code, out, err = cli(capsys, "report", str(l1_run), *args)
    assert code == 0, err
    if "--html" in args:
        html = (l1_run / "report.html").read_text()
        assert "L1 distributions" in html  # the run's first per-image metric, whatever its name
        assert "tv − mean-fill" in html  # paired statistics on l1, against the first method
    else:
        assert "l1 on fashion-mnist-mini" in out or "fashion-mnist-mini,l1,mean-fill" in out


def test_only_set_metrics_report_and_score(tmp_path, capsys):
    out = tmp_path / "R"
    assert cli(capsys, "run", "--methods", "mean-fill", "--masks", "center", "--metrics", "kid-fmnist",
               "--n-images", "4", "--out", str(out), "-o", "kid-fmnist.subset_size=2")[0] == 0
    assert cli(capsys, "report", str(out), "--html")[0] == 0
    assert "DISTRIBUTIONS" not in (out / "report.html").read_text()  # no per-image metric: no box plots
    assert cli(capsys, "score", str(out), "--metrics", "l1")[0] == 0
    assert "l1" in benchkit.load_results(out).columns


# 14: the number of images actually used, and a long command that wraps
def test_html_run_table_counts_images_and_wraps_a_long_command(tmp_path, capsys):
    folder = photos(tmp_path / "p", n=3, size=(16, 16))
    out = tmp_path / ("R" + "x" * 200)
    assert cli(capsys, "run", "--methods", "mean-fill", "--masks", "center", "--metrics", "l1", "--datasets",
               f"folder:{folder}", "--n-images", "50", "--out", str(out))[0] == 0
    cli(capsys, "report", str(out), "--html")
    html = (out / "report.html").read_text()
    assert "<td>images per dataset</td><td>3</td>" in html
    assert '<td class="wrap">benchkit run' in html


# 15: compare with one metric named as a string; all-inf PSNR
def test_compare_takes_one_metric_name_and_skips_all_inf_quietly():
    df = pd.DataFrame({"dataset": "d", "mask": "m", "method": ["a"] * 3 + ["b"] * 3, "image_id": [0, 1, 2] * 2,
                       "psnr": [30.0, 31.0, 29.0, 28.0, 30.0, 27.0]})
    table = benchkit.compare(df, "a", "b", metrics="psnr")
    assert list(table.metric) == ["psnr"] and table["diff"].iloc[0] == pytest.approx((2 + 1 + 2) / 3)
    with pytest.raises(benchkit.errors.UserError, match="none of the metrics ssim"):
        benchkit.compare(df, "a", "b", metrics="ssim")
    df["psnr"] = np.inf
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = benchkit.compare(df, "a", "b", metrics="psnr")
    assert table.empty
    assert [str(w.message) for w in caught] == [
        "no image of d/m has finite psnr values for both a and b: left out of the comparison"]


# new user 9: a duplicated image id in a cell
def test_a_duplicated_image_id_is_refused_when_the_cell_is_read(l1_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "R"
    shutil.copytree(l1_run, run_dir)
    cell = next((run_dir / "cells").glob("*.json"))
    record = json.loads(cell.read_text())
    record["rows"] = {k: v + v[:1] for k, v in record["rows"].items()}
    cell.write_text(json.dumps(record))
    for args in (["report", str(run_dir)], ["score", str(run_dir), "--metrics", "psnr"]):
        code, out, err = cli(capsys, *args)
        assert code == 2 and "holds image 0 more than once" in err and str(cell) in err


# new user 10: the README's tour line on a flat folder of photos
def test_default_methods_skip_nn_on_a_flat_folder(tmp_path, capsys):
    folder = photos(tmp_path / "flat", n=2, size=(16, 16))
    code, out, err = cli(capsys, "run", "--datasets", f"folder:{folder}", "--masks", "center", "--metrics", "l1",
                         "--n-images", "2", "-o", "folder.size=16", "-o", "gan.iterations=1", "--out",
                         str(tmp_path / "R"))
    assert code == 0, err
    assert "skipped method 'nn'" in out and "no train/ subfolder" in out


# new user 11: --out ""
def test_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["run", "--methods", "mean-fill", "--n-images", "1", "--out", ""])
    assert exc.value.code == 2 and "empty --out" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# new user 16: --scheduler with processes; --help lists plugin commands with a user's description
def test_a_flag_of_another_executor_is_refused(tmp_path, capsys):
    code, out, err = cli(capsys, "run", "--methods", "mean-fill", "--n-images", "1", "--executor", "processes",
                         "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "R"))
    assert code == 2 and "--scheduler does not apply to --executor processes" in err
    assert not (tmp_path / "R").exists()


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "weights" in out and "benchmark image inpainting" in out and "handlers" not in out


# new user 16: the header of a table where one cell failed in part
def test_table_header_gives_the_images_of_each_cell():
    from benchkit.report.tables import format_tables

    df = pd.DataFrame({"dataset": "d", "mask": "center", "method": ["a"] * 4 + ["b"] * 2,
                       "image_id": [0, 1, 2, 3, 0, 1], "psnr": np.arange(6.0)})
    header = "n = 2 to 4 (cells differ: some failed in part or have non-finite values) images"
    assert header in format_tables(df, ["psnr"])
    assert "n = 4 images" in format_tables(df[df.method == "a"], ["psnr"])


# new user 16: Pillow's in-memory buffer never reaches the user
def test_an_unreadable_image_names_the_file_not_a_buffer(tmp_path, capsys):
    folder = photos(tmp_path / "p", n=2, size=(16, 16))
    (folder / "zz.png").write_bytes(b"not a png at all")
    code, out, err = cli(capsys, "run", "--methods", "mean-fill", "--datasets", f"folder:{folder}", "--n-images",
                         "0", "--out", str(tmp_path / "R"))
    assert code == 2 and "zz.png (not an image format Pillow can read)" in err and "BytesIO" not in err


# new user 13: files folder: does not read are named in a warning
def test_skipped_files_are_named(tmp_path, capsys):
    folder = photos(tmp_path / "p", n=2, size=(16, 16))
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "anim.gif")
    code, out, err = cli(capsys, "run", "--methods", "mean-fill", "--masks", "center", "--datasets",
                         f"folder:{folder}", "--n-images", "0", "--metrics", "l1", "--out", str(tmp_path / "R"))
    assert code == 0 and "skipped 1 entries" in err and "anim.gif" in err


# new user 7: a corrupt training image that is not the first one
def test_every_training_image_is_checked_before_the_first_write(tmp_path, capsys):
    root = tmp_path / "d"
    photos(root / "test", n=2, size=(16, 16))
    photos(root / "train", n=3, size=(16, 16))
    (root / "train" / "zzz_corrupt.png").write_bytes(b"\x89PNG garbage")
    code, out, err = cli(capsys, "run", "--methods", "nn", "--masks", "center", "--datasets", f"folder:{root}",
                         "--n-images", "0", "--out", str(tmp_path / "R"))
    assert code == 2 and "zzz_corrupt.png" in err
    assert not (tmp_path / "R").exists()


# new user 5: a full disk: one line naming the file, no partial file, finished cells intact, a rerun resumes
def test_a_full_disk_is_one_line_and_the_rerun_resumes(tmp_path, capsys, monkeypatch):
    args = ["run", "--methods", "mean-fill,tv", "--masks", "center", "--metrics", "l1", "--n-images", "2",
            "--out", str(tmp_path / "R")]
    real, writes = files.replacing, []

    @contextlib.contextmanager
    def filling_up(path):
        writes.append(path)
        if len(writes) > 3:  # the manifest, then the first cell's arrays and record: then the disk is full
            raise files.WriteError(f"cannot write {path} (No space left on device): free some space")
        with real(path) as tmp:
            yield tmp

    from benchkit.store import cells

    modules = (files, cells)  # every module a run writes through (pictures write through files)
    for module in modules:
        monkeypatch.setattr(module, "replacing", filling_up)
    code, out, err = cli(capsys, *args)
    assert code == 2 and "No space left on device" in err and len(err.strip().splitlines()[-1:]) == 1
    assert [p.name for p in writes[:3]] == ["manifest.json", "fashion-mnist-mini__center__mean-fill.npz",
                                            "fashion-mnist-mini__center__mean-fill.json"]
    for module in modules:
        monkeypatch.setattr(module, "replacing", real)
    assert not list((tmp_path / "R").rglob(".*.tmp"))
    code, out, err = cli(capsys, *args)
    assert code == 0 and "1 finished cells reused" in out, err


def test_replacing_names_the_target_on_enospc(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))

    monkeypatch.setattr(files.os, "replace", full)
    with pytest.raises(files.WriteError, match=r"cannot write .*cell\.json \(No space left on device\)"):
        files.atomic_write_text(tmp_path / "cell.json", "{}")
    assert list(tmp_path.iterdir()) == []


# new user 16: SIGTERM is handled like Ctrl-C
def test_sigterm_leaves_the_manifest_interrupted(tmp_path):
    args = BENCHKIT + ["run", "--methods", "flat-fill", "-o", "flat-fill.delay=0.5", "--masks", "center",
                       "--n-images", "64", "--batch-size", "1", "--out", "r"]
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "r" / "manifest.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "terminated; run the same command again" in err and "Traceback" not in err
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["status"] == "interrupted"


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# new user 4 and 1: kill -9 of the client leaves no worker behind; a killed worker's shards run again
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_processes_workers_exit_with_their_client_and_a_killed_worker_is_replaced(tmp_path):
    args = BENCHKIT + ["run", "--methods", "flat-fill", "-o", "flat-fill.delay=0.3", "--masks", "center",
                       "--n-images", "48", "--batch-size", "1", "--shard-size", "4", "--executor", "processes",
                       "--workers", "2", "--out", "r"]
    client = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list((tmp_path / "r" / "cells").glob("*.shards/*.json")) and time.time() < deadline:
        time.sleep(0.1)
    workers = [p for p in _children(client.pid) if "spawn_main" in open(f"/proc/{p}/cmdline").read()]
    assert len(workers) >= 2
    os.kill(workers[0], signal.SIGKILL)  # one worker dies: its shards run again on a new pool
    _, err = client.communicate(timeout=120)
    assert client.returncode == 0 and "a worker process died" in err and "Traceback" not in err, err
    df = benchkit.load_results(tmp_path / "r")
    assert sorted(df.image_id) == list(range(48))

    client = subprocess.Popen(args + ["--force"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    workers = []
    while len(workers) < 2 and time.time() < deadline:
        time.sleep(0.2)
        workers = [p for p in _children(client.pid) if "spawn_main" in open(f"/proc/{p}/cmdline").read()]
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers)


# new user 6: folders that cannot be read. As root (CI) permissions do not apply, so the system's
# answer for a non-root user is given by patching: PermissionError from is_dir() (mode 000) and
# from listing (mode 111).
@pytest.mark.parametrize("fails", ["is_dir", "iterdir"])
def test_unreadable_folders_are_one_line(tmp_path, capsys, monkeypatch, fails):
    import pathlib

    folder = photos(tmp_path / "p", n=2, size=(16, 16))
    if os.getuid() != 0:
        os.chmod(folder, 0o000 if fails == "is_dir" else 0o111)
    else:
        real = getattr(pathlib.Path, fails)

        def denied(self, *args):
            if self == folder or folder in self.parents:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real(self, *args)

        monkeypatch.setattr(pathlib.Path, fails, denied)
    try:
        for flag in (["--datasets", f"folder:{folder}", "--masks", "center"], ["--masks", f"file:{folder}"]):
            code, out, err = cli(capsys, "run", "--methods", "mean-fill", "--n-images", "2", "--metrics", "l1",
                                 "--out", str(tmp_path / "R"), *flag)
            assert code == 2 and "Permission denied" in err and "permissions" in err, err
            assert not (tmp_path / "R").exists()
    finally:
        os.chmod(folder, 0o755)


# new user 16: SSIM of large images in bounded memory, equal to the whole-image computation
def test_ssim_in_strips_equals_the_whole_image():
    from skimage.metrics import structural_similarity

    from benchkit.builtins.metrics.pixel import ssim

    rng = np.random.default_rng(0)
    x, y = rng.random((2, 3, 70, 50)), rng.random((2, 3, 70, 50))
    ours = ssim(torch.from_numpy(x), torch.from_numpy(y), max_elements=3 * 2 * 13 * 50)  # strips of 13 rows
    reference = [structural_similarity(x[i], y[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1, channel_axis=0) for i in range(2)]
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-9)


# new user 8: hand-edited results folders with fields of the wrong type
@pytest.mark.parametrize("target,path,value", [
    ("cell", "settings.seed", "zero"), ("cell", "settings.n_images", "lots"),
    ("cell", "settings.dataset_options", [1, 2]), ("cell", "metric_errors", ["x"]),
    ("cell", "metric_errors", {"psnr": 3}), ("manifest", "config.options", [1]),
    ("manifest", "config.options", {"tv": 1})])
def test_fields_of_the_wrong_type_are_named(l1_run, tmp_path, capsys, target, path, value):
    import shutil

    run_dir = tmp_path / "R"
    shutil.copytree(l1_run, run_dir)
    file = run_dir / "manifest.json" if target == "manifest" else next((run_dir / "cells").glob("*.json"))
    data = json.loads(file.read_text())
    parent, key = data, path.split(".")
    for part in key[:-1]:
        parent = parent[part]
    parent[key[-1]] = value
    file.write_text(json.dumps(data))
    for args in (["score", str(run_dir), "--metrics", "psnr"], ["report", str(run_dir)],
                 ["report", str(run_dir), "--html"]):
        code, out, err = cli(capsys, *args)
        assert code == 2 and str(file) in err and f"field '{path}" in err, (args, err)
        assert len(err.strip().splitlines()) == 1


# new user 12: a comma in a path, and repeated list flags
def test_a_comma_in_a_path_and_repeated_flags(tmp_path, capsys):
    folder = photos(tmp_path / "photos, 2023", n=2, size=(16, 16))
    code, out, err = cli(capsys, "run", "--methods", "mean-fill", "--methods", "tv", "--masks", "center",
                         "--datasets", str(f"folder:{folder}").replace(",", "\\,"), "--metrics", "l1",
                         "--n-images", "0", "--out", str(tmp_path / "R"))
    assert code == 0, err
    df = benchkit.load_results(tmp_path / "R")
    assert set(df.method) == {"mean-fill", "tv"} and set(df.dataset) == {f"folder:{folder}"}


# new user 13: a 32-bit integer TIFF is read at its full scale, with a warning
def test_a_32_bit_integer_image_is_scaled_with_a_warning(tmp_path):
    from benchkit.builtins.datasets.basic import read_image

    values = np.array([[0, 2**31 - 1], [2**20, 2**30]], dtype=np.int32)
    buffer = __import__("io").BytesIO()
    Image.fromarray(values).save(buffer, format="TIFF")
    with pytest.warns(UserWarning, match="32-bit integer image"):
        gray = read_image(buffer.getvalue(), tmp_path / "deep.tif", "L", 2)
    np.testing.assert_allclose(gray[..., 0], values / (2**32 - 1), rtol=1e-6)


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# new user 2: the Dask scheduler killed mid-run: one line naming it, finished shards kept, a rerun resumes
def test_a_lost_dask_scheduler_is_one_line_and_keeps_finished_shards(tmp_path):
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    dask = [sys.executable, "-m", "distributed.cli"]
    scheduler = subprocess.Popen(dask[:2] + ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                                             address.rsplit(":", 1)[1], "--no-dashboard"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(dask[:2] + ["distributed.cli.dask_worker", address, "--nthreads", "1",
                                          "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    args = BENCHKIT + ["run", "--methods", "flat-fill", "-o", "flat-fill.delay=0.3", "--masks", "center",
                       "--n-images", "64", "--batch-size", "1", "--shard-size", "4", "--scheduler", address,
                       "--out", "r"]
    try:
        client = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 90
        while not list((tmp_path / "r" / "cells").glob("*.shards/*.json")) and time.time() < deadline:
            time.sleep(0.1)
        scheduler.kill()
        _, err = client.communicate(timeout=120)
    finally:
        scheduler.kill()
        worker.kill()
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("benchkit: error")]
    assert client.returncode == 1 and "Traceback" not in err, err
    assert len(lines) == 1 and f"lost the Dask scheduler at {address}" in lines[0] and "rerun" in lines[0]
    kept = list((tmp_path / "r" / "cells").glob("*.shards/*.json"))
    assert kept
    done = subprocess.run(BENCHKIT + ["run", "--methods", "flat-fill", "--masks", "center", "--n-images", "64",
                                      "--batch-size", "1", "--shard-size", "4", "--out", "r", "-o",
                                      "flat-fill.delay=0.3", "--executor", "processes"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and f"{len(kept)} finished shards of unfinished cells reused" in done.stdout


# new user 3: Ctrl-C under --executor dask: the terminal sends SIGINT to the whole process group
def test_ctrl_c_under_dask_prints_one_line(tmp_path):
    pytest.importorskip("distributed")
    args = BENCHKIT + ["run", "--methods", "flat-fill", "-o", "flat-fill.delay=0.5", "--masks", "center",
                       "--n-images", "64", "--batch-size", "1", "--shard-size", "4", "--executor", "dask",
                       "--workers", "2", "--out", "r"]
    client = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 90
    while not list((tmp_path / "r" / "cells").glob("*.shards/*.json")) and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(client.pid, signal.SIGINT)
    _, err = client.communicate(timeout=60)
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "img" not in line]
    assert client.returncode == 130 and "Traceback" not in err, err
    assert lines == ["benchkit: interrupted; run the same command again to resume"], lines
