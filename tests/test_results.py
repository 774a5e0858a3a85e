import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from benchkit.report.tables import format_tables
from benchkit.run.inputs import Inputs
from benchkit.run.plan import plan
from benchkit.run.resolve import resolve
from benchkit.store.cells import cell_path
from benchkit.store.results import mean_ci, summary


def plan_of(config, registry):
    """The plan of a run configuration: resolved, then planned with a new Inputs."""
    return plan(resolve(config, registry), Inputs(registry))



def test_mean_ci_matches_scipy_t_interval():
    values = pd.Series([21.0, 23.5, 19.2, 25.1, 22.2, 20.9])
    mean, half = mean_ci(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean()) and half == pytest.approx((high - low) / 2)
    assert math.isnan(mean_ci(pd.Series([3.0]))[1])


def test_summary_and_tables_layout():
    df = pd.DataFrame({"dataset": "d", "mask": ["random", "center"] * 4, "method": ["a"] * 4 + ["b"] * 4,
                       "image_id": [0, 0, 1, 1] * 2, "psnr": [10.0, 12.0, 14.0, 16.0, 1, 2, 3, 4]})
    table = summary(df, "psnr")["d"]
    assert table.at["a", "center"][0] == 14.0 and table.at["b", "random"][0] == 2.0
    from benchkit.store.results import RunDisplay

    text = format_tables(df, ["psnr"], "github", display=RunDisplay(masks=["center", "random"]))
    header = [line for line in text.splitlines() if line.startswith("| method")][0]
    assert header.index("center") < header.index("random")  # the run's order, not the frame's or alphabetical
    header = [line for line in format_tables(df, ["psnr"]).splitlines() if line.startswith("| method")][0]
    assert header.index("random") < header.index("center")  # no display recorded: the order of appearance


def test_cell_paths_are_safe_and_distinct(tmp_path):
    a = cell_path(tmp_path, "folder:/x/y", "center", "m")
    b = cell_path(tmp_path, "folder:/x_y", "center", "m")
    assert a != b and "/" not in a.name and ":" not in a.name


def test_tasks_are_small_picklable_data(registry, config):
    planned = plan_of(config, registry)
    assert not config.out.exists()  # planning writes nothing and takes no lock
    task = planned.cells[0].shards[0]
    data = pickle.dumps(task)
    assert pickle.loads(data) == task and len(data) < 2000  # names, options and ids: no tensors
    assert not any(isinstance(v, (np.ndarray, torch.Tensor)) for v in vars(task).values())


def test_cell_records_are_versioned(tmp_path):
    import json

    import pytest

    from benchkit.errors import UserError
    from benchkit.store.cells import CELL_VERSION, CellRecord, read_cell, write_cell

    path = tmp_path / "cells" / "c.json"
    write_cell(path, CellRecord("d", "m", "x", "ok", rows={"image_id": [0, 1], "psnr": [1.0, 2.0]}))
    stored = json.loads(path.read_text())
    assert stored["version"] == CELL_VERSION == 2
    del stored["version"]  # a benchkit 0.1 cell has no version: still read
    path.write_text(json.dumps(stored))
    assert read_cell(path).version == 1 and read_cell(path).rows["psnr"] == [1.0, 2.0]
    path.write_text(json.dumps(stored | {"version": 99}))
    with pytest.raises(UserError, match="version 99"):
        read_cell(path)


def test_replacing_leaves_the_old_file_when_a_write_fails(tmp_path):
    import pytest

    from benchkit.files import atomic_write_text, replacing

    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_null_scores_load_as_nan(tmp_path):
    """Found by the fuzzer: a metric column of JSON nulls gave an object column and a crash in the tables."""
    import json

    from benchkit.report.tables import format_tables
    from benchkit.store.cells import CellRecord, write_cell, write_manifest
    from benchkit.store.results import load_results

    write_manifest(tmp_path, {"settings": {}})
    write_cell(tmp_path / "cells" / "c.json", CellRecord("d", "m", "x", "ok", rows={"image_id": [0, 1],
                                                                                    "psnr": [None, None]}))
    df = load_results(tmp_path)
    assert df.psnr.dtype == float and df.psnr.isna().all()
    text = format_tables(df, ["psnr"])
    assert "left out of the means: 0 infinite and 2 missing values" in text and "| x        | –   |" in text
    assert json.loads((tmp_path / "cells" / "c.json").read_text())["rows"]["psnr"] == [None, None]
