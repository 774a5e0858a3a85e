"""The run folder: its preparation before the first write, its lock, and its manifest.

One run writes a results folder at a time: :func:`lock_out` holds an exclusive ``flock`` on
``OUT/.lock`` for the whole run, which the operating system releases when the process ends, however
it ends, so a lock left by a dead process is simply taken over.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import sys
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import torch

from benchkit import __version__
from benchkit.errors import UserError
from benchkit.store.cells import CELLS, read_manifest

LOCK = ".lock"


def lock_out(out: Path) -> TextIO | None:
    """Take the results folder's lock; raise UserError naming the other run if it is held.
    Returns the open lock file (keep it open for the run; closing it releases the lock)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs are not serialised
        return None
    handle = open(out / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"another benchkit run ({holder}) is writing {out}: wait for it to finish, "
                        "or choose another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": datetime.now(UTC).isoformat(timespec="seconds")}))
    handle.flush()
    return handle


def prepare_out(config, notes: list[str]) -> tuple[dict | None, TextIO | None]:
    """Make sure the output folder can be written, take its lock, and check that it holds a
    compatible run. Returns the previous manifest (None if there is none, or if ``--force`` replaces
    a corrupt one) and the lock, held until it is closed. Cells of other runs are kept: only
    ``config.replace_folder`` deletes them, and a note says how many of which methods."""
    out = config.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".probe-{uuid.uuid4().hex}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to results folder {out} ({exc.strerror or exc}): "
                        "choose another --out") from exc
    lock = lock_out(out)
    try:
        return _check_previous(config, out, notes), lock
    except BaseException:
        if lock is not None:
            lock.close()
        raise


def folder_cells(out: Path) -> dict[str, int]:
    """How many cell files of each method a results folder holds (names read from the files, or
    the file name where a file cannot be read)."""
    counts: dict[str, int] = {}
    for path in sorted((out / CELLS).glob("*.json")):
        try:
            method = str(json.loads(path.read_text()).get("method", path.stem))
        except (OSError, ValueError, AttributeError):
            method = path.stem
        counts[method] = counts.get(method, 0) + 1
    return counts


def _described(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return f"{total} cells ({', '.join(f'{m}: {n}' for m, n in counts.items())})"


def _replace(out: Path, notes: list[str]) -> None:
    """``--replace-folder``: delete every cell of the folder, saying how many of which methods."""
    counts = folder_cells(out)
    if counts or (out / CELLS).exists():
        shutil.rmtree(out / CELLS, ignore_errors=True)
        notes.append(f"--replace-folder removed {_described(counts)} from {out}")


def _check_previous(config, out: Path, notes: list[str]) -> dict | None:
    """The folder's earlier manifest, after checking that it is readable and of this run's seed and
    image count. This is a second check beside the task key on purpose: the key decides whether a
    cell can be reused, but a cell's file is named by its (dataset, mask, method) alone, so a run of
    another seed or image count would write over the earlier run's cells; it must go elsewhere."""
    new = {"seed": config.seed, "n_images": config.n_images}
    if config.replace_folder:
        _replace(out, notes)
        return None
    try:
        manifest = read_manifest(out)
    except UserError as exc:
        if not config.force:
            raise UserError(f"{exc}; add --force to write a new manifest.json (the cells are kept)") from None
        return None  # a new manifest; cells carry their own task keys and are reused or redone by them
    if manifest is None:
        if (out / CELLS).exists() and any((out / CELLS).glob("*.json")) and not config.force:
            raise UserError(f"{out} holds cells but no manifest.json: add --force to write a new one (the cells "
                            "are kept), or choose another --out")
        return None
    old = manifest.get("settings")
    if not (isinstance(old, dict) and all(type(old.get(k)) is int for k in new)):
        if not config.force:
            raise UserError(f"{out}/manifest.json has no valid settings (seed, n_images): it is corrupt; add "
                            "--force to write a new one (the cells are kept), or choose another --out")
        return None
    if old != new:
        counts = folder_cells(out)
        suggestion = out.parent / f"{out.name}-seed{config.seed}-n{config.n_images}"
        raise UserError(f"{out} holds a run with seed {old.get('seed')} and --n-images {old.get('n_images')} "
                        f"({_described(counts)}), this run uses seed {config.seed} and --n-images "
                        f"{config.n_images}: choose another --out (e.g. --out {suggestion}), or add "
                        f"--replace-folder to delete those {sum(counts.values())} cells")
    return manifest


def build_manifest(config, registry) -> dict:
    import numpy  # noqa: E401  (versions only)
    import pandas
    import scipy

    return {
        "command": config.command or " ".join(sys.argv),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "settings": {"seed": config.seed, "n_images": config.n_images},
        "versions": {"benchkit": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": numpy.__version__, "scipy": scipy.__version__, "pandas": pandas.__version__},
        "plugins": {f"{p.kind} {p.name}": p.distribution for p in registry.all()},  # where each came from
        "hardware": {"machine": platform.machine(), "processor": processor_name(),
                     "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "finished": None,
        "status": "running",
    }


def processor_name() -> str:
    """The CPU's model name (``platform.processor()`` is empty on Linux, so /proc/cpuinfo is read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()




def merge_display(previous: dict | None, current: dict) -> dict:
    """A results folder's display record after a run: this run's order of datasets, masks and
    methods first, then those only earlier runs in the folder had; metric attributes of both."""
    previous = previous if isinstance(previous, dict) else {}
    merged: dict = {}
    for key in ("datasets", "masks", "methods"):
        old = previous[key] if isinstance(previous.get(key), list) else []
        merged[key] = list(dict.fromkeys([*current.get(key, []), *old]))
    old_metrics = previous.get("metrics") if isinstance(previous.get("metrics"), dict) else {}
    merged["metrics"] = old_metrics | current.get("metrics", {})
    return merged
