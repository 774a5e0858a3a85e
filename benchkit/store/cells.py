"""Run folders: ``manifest.json`` plus one ``cells/*.json`` file per (dataset, mask, method).

A cell file is written atomically when its cell finishes (temporary file, then rename), so an
interrupted run never leaves a half-written cell. Its ``.npz`` beside it keeps, for pictures, a few
test images chosen by the run's seed (the same for every method and mask of a dataset): their
positions ``ids``, the composited predictions ``samples`` and ground truth ``truth`` (uint8,
``N x C x H x W``) and the masks ``known`` (bool, ``N x 1 x H x W``); and every composite of the cell,
``outputs`` (uint8, positions in ``output_ids``; 0.5 MB for 512 images of 32 x 32), from which
``benchkit score`` adds metrics without running the method again.
"""
from __future__ import annotations

import json
import shutil
import zipfile
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import BinaryIO

import numpy as np

from benchkit.errors import UserError
from benchkit.files import atomic_write_text, cell_folder_name, replacing, safe_name
from benchkit.plugin.metric import MetricState, merge_states

MANIFEST = "manifest.json"
CELLS = "cells"
KEY_COLUMNS = ["dataset", "mask", "method", "image_id"]


def cell_path(run_dir: Path, dataset: str, mask: str, method: str) -> Path:
    """File of one cell: ``RUN/cells/DATASET__MASK__METHOD.json`` (made filesystem-safe)."""
    return run_dir / CELLS / f"{safe_name(f'{dataset}__{mask}__{method}')}.json"


def grid_path(run_dir: Path, dataset: str, mask: str) -> Path:
    """Comparison grid of one (dataset, mask): ``RUN/grids/DATASET__MASK.png``."""
    return run_dir / "grids" / f"{cell_folder_name(dataset, mask)}.png"


CELL_VERSION = 2  # 1: the unversioned dicts of benchkit 0.1 (read as version 1)


@dataclass
class CellRecord:
    """What a finished (dataset, mask, method) cell stores in ``cells/*.json``.

    ``rows`` maps column names (``image_id``, ``seconds``, ``missing_fraction``, one per metric) to
    equal-length lists, one value per image; ``set_scores`` maps each set metric to its one value.
    ``rows`` is None for a failed cell, whose ``error`` (one line)
    and ``traceback`` say why. ``settings`` are what the cell depends on (options, seed, dataset
    digest ...): a cell is reused only when they match. ``version`` is :data:`CELL_VERSION`.
    """

    dataset: str
    mask: str
    method: str
    status: str  # "ok" or "failed"
    settings: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)
    rows: dict | None = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    sample_ids: list = field(default_factory=list)
    metric_errors: dict = field(default_factory=dict)  # metric -> error: that column is NaN, the rest stands
    set_scores: dict = field(default_factory=dict)  # set metric (FID ...) -> its value over the cell's images
    states: dict = field(default_factory=dict)  # shard files: index of the metric states kept in the .npz
    bins: str | None = None  # hole-area binning of the set metrics ("lama", "comodgan"), or none
    bin_scores: dict = field(default_factory=dict)  # set metric -> bin name -> its value over that bin's images
    bin_counts: dict = field(default_factory=dict)  # bin name -> images in it
    version: int = CELL_VERSION

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def key(self) -> tuple[str, str, str]:
        return self.dataset, self.mask, self.method

    @classmethod
    def from_dict(cls, data) -> CellRecord:
        """Check and convert a cell file's JSON; raises ValueError naming what is wrong."""
        _check_record(data)
        known = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known and k != "version"},
                     version=int(data.get("version", 1)) if isinstance(data.get("version", 1), int) else 0)
        if record.version not in (1, CELL_VERSION):
            raise ValueError(f"cell format version {data.get('version')!r} is not one this benchkit reads")
        if not isinstance(record.settings, dict):
            raise ValueError("its settings are not an object")
        return record


def write_cell(path: Path, record: CellRecord, samples: dict[str, np.ndarray] | None = None,
               compress: bool = True) -> None:
    """Atomically write a cell's record (and its sample arrays first, so the JSON marks completion);
    ``compress=False`` stores the arrays as they are (shard files, read once and then removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if samples is not None:
        with replacing(path.with_suffix(".npz")) as tmp, tmp.open("wb") as out:
            write_npz(out, samples, compress)
    atomic_write_text(path, json.dumps(asdict(record), allow_nan=True))


PROBE_BYTES = 1 << 20  # the slice of a large array deflated first, to see whether deflating it pays


def write_npz(out: BinaryIO, arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """Write an ``.npz`` (what ``np.load`` reads) to the open file ``out``, its members deflated at
    level 1 or stored, each streamed to the file as it is made.

    With ``compress``, a member is deflated unless a probe of its first bytes shrinks by less than
    a tenth (noise-like images): level 1 compresses kept composites faster than
    ``np.savez_compressed``'s level, to a similar size (benchmarks/score_folder.py).
    """
    with zipfile.ZipFile(out, "w", allowZip64=True) as archive:
        for name, array in arrays.items():
            array = np.asanyarray(array)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED if compress and _deflates(array) else zipfile.ZIP_STORED
            member._compresslevel = 1  # type: ignore[attr-defined]  # the name 3.11 and 3.12 read; 3.13 aliases it
            with archive.open(member, "w", force_zip64=True) as stream:
                np.lib.format.write_array(stream, array, allow_pickle=False)


def _deflates(array: np.ndarray) -> bool:
    """Whether deflating ``array`` is worth it: always for small arrays, else judged on a probe."""
    if array.nbytes <= PROBE_BYTES or not array.flags.c_contiguous:
        return True
    probe = array.reshape(-1).view(np.uint8)[:PROBE_BYTES].tobytes()
    return len(zlib.compress(probe, 1)) < 0.9 * len(probe)


SAMPLE_ARRAYS = ("ids", "samples", "truth", "known")
OUTPUT_ARRAYS = ("output_ids", "outputs")
STATE_ARRAY = "state_{}"  # metric states in a shard's .npz, indexed by the record's ``states``


def state_arrays(states: dict[str, dict[str, MetricState]]) -> tuple[dict, dict[str, np.ndarray]]:
    """A shard's metric states (``metric -> subset -> MetricState``) as an index for its record
    (``metric -> subset -> {"reductions", "arrays": {state name: array key}}``) and the arrays."""
    index: dict = {}
    arrays: dict[str, np.ndarray] = {}
    for metric, subsets in states.items():
        for subset, state in subsets.items():
            keys = {}
            for name, value in state.arrays().items():
                keys[name] = STATE_ARRAY.format(len(arrays))
                arrays[keys[name]] = value
            index.setdefault(metric, {})[subset] = {"reductions": state.reductions, "arrays": keys}
    return index, arrays


def read_states(cell_json: Path, record: CellRecord) -> dict[str, dict[str, MetricState]]:
    """The metric states a shard file keeps (see :func:`state_arrays`); UserError if they are unreadable."""
    if not record.states:
        return {}
    path = Path(cell_json).with_suffix(".npz")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {metric: {subset: MetricState.from_arrays(
                entry["reductions"], {name: archive[key] for name, key in entry["arrays"].items()})
                for subset, entry in subsets.items()} for metric, subsets in record.states.items()}
    except Exception as exc:  # a missing, truncated or hand-edited file: the shard is redone
        raise UserError(f"shard file {path} is corrupt ({type(exc).__name__}: {exc}): delete it and rerun the same "
                        "command to redo that shard") from exc


def read_samples(cell_json: Path, outputs: bool = False) -> dict[str, np.ndarray] | None:
    """The picture arrays kept beside a cell (``ids``, ``samples``, ``truth``, ``known``), and with
    ``outputs`` every composite (``output_ids``, ``outputs``: the largest part, read only when asked);
    None for a failed cell, one written before benchkit kept them, or a missing or unreadable file."""
    path = Path(cell_json).with_suffix(".npz")
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            wanted = SAMPLE_ARRAYS + (OUTPUT_ARRAYS if outputs else ())
            arrays = {k: archive[k] for k in archive.files if k in wanted}
    except Exception:  # truncated, not a zip, not .npy inside: all mean "unreadable"
        return None
    if not set(SAMPLE_ARRAYS) <= set(arrays):
        return None
    n = len(arrays["ids"])
    shapes_agree = all(arrays[k].ndim == 4 and len(arrays[k]) == n for k in ("samples", "truth", "known"))
    if "outputs" in arrays:
        shapes_agree &= (arrays["outputs"].ndim == 4 and arrays["outputs"].shape[1:] == arrays["samples"].shape[1:]
                         and arrays.get("output_ids", np.empty(0)).shape == arrays["outputs"].shape[:1])
    return arrays if shapes_agree and arrays["samples"].shape == arrays["truth"].shape else None


def shard_path(cell_file: Path, task) -> Path:
    """File of a shard (a :class:`~benchkit.run.tasks.ShardTask`) of a cell: ``CELL.shards/START-END-KEY.json``,
    named by its images and its reuse key."""
    start, end = task.image_ids[0], task.image_ids[-1] + 1
    return cell_file.with_suffix(".shards") / f"{start:07d}-{end:07d}-{task.key[:20]}.json"


@dataclass
class Shard:
    """A finished shard of a cell, in memory: its record, its picture and output arrays (None when
    it failed or kept none) and its metric states (``metric -> subset -> MetricState``)."""

    record: CellRecord
    samples: dict[str, np.ndarray] | None
    states: dict[str, dict[str, MetricState]]
    images: tuple[int, int]  # first and last image position

    @classmethod
    def read(cls, path: Path) -> Shard:
        """A shard from its file (see :func:`shard_path`)."""
        record = read_cell(path)
        start, end = (int(part) for part in path.stem.split("-")[:2])
        return cls(record, read_samples(path, outputs=True) if record.ok else None, read_states(path, record),
                   (start, end - 1))


def join_shards(record: CellRecord, shards: list[Shard]) -> tuple[dict | None, dict]:
    """Join a cell's shards (in image order) into ``record``; returns the joined arrays (every kept
    composite among them) and the shards' metric states merged (``metric -> subset -> MetricState``),
    from which the writer computes the set scores before :func:`write_assembled`.

    The cell is ``ok`` when every shard is; otherwise ``failed``, with the error of the first failed
    shard, and the rows of the shards that succeeded.
    """
    failed = [s for s in shards if not s.record.ok]
    rows = [s.record.rows for s in shards if s.record.ok and s.record.rows]
    record.rows = {k: [v for part in rows for v in part[k]] for k in rows[0]} if rows else None
    record.seconds = sum(s.record.seconds for s in shards)
    record.metric_errors = {k: v for s in shards for k, v in (s.record.metric_errors or {}).items()}
    record.status = "failed" if failed else "ok"
    if failed:
        first, (start, last) = failed[0].record, failed[0].images
        record.error = first.error if len(shards) == 1 else (
            f"{len(failed)} of {len(shards)} shards failed; images {start}-{last}: {first.error}")
        record.traceback = first.traceback
    arrays = [s.samples for s in shards if s.record.ok and s.samples is not None]
    keys = SAMPLE_ARRAYS + (OUTPUT_ARRAYS if arrays and all("outputs" in a for a in arrays) else ())
    samples = ({k: arrays[0][k] if len(arrays) == 1 else np.concatenate([a[k] for a in arrays]) for k in keys}
               if arrays else None)
    record.sample_ids = samples["ids"].tolist() if samples else []
    return samples, merge_states(s.states for s in shards)


def write_assembled(cell_file: Path, record: CellRecord, samples: dict | None) -> CellRecord:
    """Write a joined cell atomically; a finished cell's shard folder is removed."""
    write_cell(cell_file, record, samples)
    if record.ok:
        shutil.rmtree(cell_file.with_suffix(".shards"), ignore_errors=True)
    return record


def read_cell(path: Path) -> CellRecord:
    """Read one cell file; a corrupt one raises UserError naming it."""
    try:
        record = CellRecord.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"results file {path} is corrupt ({exc}): delete it and rerun the same "
                        "command to redo that cell") from exc
    return record


NUMBER = (int, float)
OPTIONS = (dict, type(None))
# The declared types of the stored records' fields, checked whenever a file is read: dotted paths
# into the JSON, and the types a field may hold. A field that is absent (an older benchkit) passes.
CELL_SCHEMA = {
    "settings": dict, "settings.seed": int, "settings.n_images": int, "settings.metrics": list,
    "settings.method_options": OPTIONS, "settings.mask_options": OPTIONS, "settings.dataset_options": OPTIONS,
    "settings.checkpoint": (str, type(None)), "settings.dataset_digest": (str, type(None)),
    "settings.benchkit": (str, type(None)), "settings.method_version": (str, type(None)),
    "settings.task_key": (str, type(None)),
    "metrics": list, "metric_errors": dict, "states": dict, "sample_ids": list, "seconds": NUMBER,
    "bins": (str, type(None)), "bin_scores": dict, "bin_counts": dict,
    "error": (str, type(None)), "traceback": (str, type(None)), "version": int,
}
MANIFEST_SCHEMA = {"config": dict, "config.options": dict, "settings": dict, "settings.seed": int,
                   "settings.n_images": int, "history": list, "dataset_digests": dict, "display": dict,
                   "display.masks": list, "display.methods": list, "display.datasets": list, "display.metrics": dict}
TYPE_NAMES = {dict: "an object", list: "a list", int: "a whole number", float: "a number", str: "a string",
              type(None): "null"}


def _field(data, path: str) -> tuple[bool, object]:
    """(present, value) of a dotted ``path`` in nested JSON objects."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def check_schema(data: dict, schema: dict) -> None:
    """Raise ValueError naming the first field of ``data`` whose type is not the declared one."""
    for path, types in schema.items():
        present, value = _field(data, path)
        types = types if isinstance(types, tuple) else (types,)
        if present and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            expected = " or ".join(dict.fromkeys(TYPE_NAMES.get(t, t.__name__) for t in types))
            raise ValueError(f"field '{path}' holds {json.dumps(value, default=str)[:40]}, not {expected}")
    for path, inner in (("metric_errors", str), ("config.options", dict)):  # the values of these objects
        _, value = _field(data, path)
        if isinstance(value, dict):
            bad = next((k for k, v in value.items() if not isinstance(v, inner)), None)
            if bad is not None:
                raise ValueError(f"field '{path}.{bad}' is not {TYPE_NAMES[inner]}")


def _check_record(record) -> None:
    """Raise ValueError unless ``record`` has the shape :func:`write_cell` gives it."""
    if not isinstance(record, dict) or record.get("status") not in ("ok", "failed"):
        raise ValueError("not a benchkit cell record")
    check_schema(record, CELL_SCHEMA)
    for key in ("dataset", "mask", "method"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"its '{key}' is not a name")
    set_scores = record.get("set_scores", {})
    if not isinstance(set_scores, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, (int, float))) for k, v in set_scores.items()):
        raise ValueError("its set_scores are not an object of numbers")
    rows = record.get("rows")
    if record["status"] == "failed" and rows is None:
        return
    if not isinstance(rows, dict) or not isinstance(rows.get("image_id"), list):
        raise ValueError("its rows have no image_id list")
    n = len(rows["image_id"])
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in rows["image_id"]):
        raise ValueError("its image_id column holds values that are not image positions")
    if len(set(rows["image_id"])) != n:
        duplicated = next(i for i in rows["image_id"] if rows["image_id"].count(i) > 1)
        raise ValueError(f"its image_id column holds image {duplicated} more than once")
    for column, values in rows.items():
        if not isinstance(values, list) or len(values) != n:
            raise ValueError(f"column '{column}' has {len(values) if isinstance(values, list) else 'no'} "
                             f"values for {n} images")
        if column != "image_id" and not all(isinstance(v, (int, float)) or v is None for v in values):
            raise ValueError(f"column '{column}' holds values that are not numbers")


def read_manifest(run_dir: Path) -> dict | None:
    """The run's manifest, None if there is none; corrupt raises UserError."""
    path = run_dir / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError(f"it holds a JSON {type(manifest).__name__}, not an object")
        check_schema(manifest, MANIFEST_SCHEMA)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is corrupt ({exc}): rerun with --force or another --out") from exc
    return manifest


def write_manifest(run_dir: Path, manifest: dict) -> None:
    atomic_write_text(run_dir / MANIFEST, json.dumps(manifest, indent=2, default=str))


