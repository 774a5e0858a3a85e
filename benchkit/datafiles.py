"""Dataset files on disk: where to look, verified downloads, safe extraction, and a uint8 cache.

Dataset plugins that preprocess their official distribution files (decode, crop, resize) keep the
result as a ``uint8`` array of shape ``N x H x W x C`` in a ``.npy`` file, memory-mapped on later
runs, so the second run starts in seconds. The cache lives in ``$BENCHKIT_CACHE`` (default
``~/.cache/benchkit``), keyed by the dataset, split, preprocessing and the size and modification
time of the source files: changing any of them rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from benchkit.errors import UserError
from benchkit.files import atomic_write_text, replacing

DATA_ENV = "BENCHKIT_DATA"
CACHE_ENV = "BENCHKIT_CACHE"


def data_folders(name: str, data_dir: str | Path | None) -> list[Path]:
    """Folders searched for dataset ``name``, in order: ``DATA_DIR/NAME``, ``DATA_DIR``,
    ``$BENCHKIT_DATA/NAME``."""
    folders = [Path(data_dir) / name, Path(data_dir)] if data_dir else []
    if os.environ.get(DATA_ENV):
        folders.append(Path(os.environ[DATA_ENV]) / name)
    return folders


def md5_check(md5: str) -> Callable[[Path], bool]:
    """A check for :func:`fetch`: the file's MD5 is ``md5``. MD5, not the SHA-256 of
    :func:`benchkit.files.file_digest` that benchkit keys everything with, because it is the digest
    some datasets publish for their archives (CelebA's, SVHN's): the check follows its source."""
    def check(path: Path) -> bool:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "md5").hexdigest() == md5

    return check


def fetch(url: str, target: Path, check: str | Callable[[Path], bool], what: str = "checksum") -> Path:
    """Download ``url`` to ``target`` unless a file passing ``check`` is already there.

    ``check`` is the file's expected MD5 (hex) or a function of the path. The bytes go to a
    temporary file in the same folder and are renamed into place only when they pass it (``what``
    names it in the error), so a failed or corrupt download never leaves a file that looks complete.
    """
    if isinstance(check, str):
        check, what = md5_check(check), "MD5 checksum"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and check(target):
        return target
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as exc:
            tmp.close()
            os.unlink(tmp.name)
            raise UserError(f"download of {url} failed ({exc}): check the network, or put "
                            f"{target.name} into {target.parent} by hand") from exc
    if not check(Path(tmp.name)):
        os.unlink(tmp.name)
        raise UserError(f"{target.name} from {url} has the wrong {what}: try again later, or "
                        f"put a good copy into {target.parent} by hand")
    os.replace(tmp.name, target)
    return target


def extract(archive: Path, dest: Path) -> None:
    """Unpack a ``.zip``, ``.tgz`` or ``.tar[.gz]`` into ``dest``, refusing members that would land
    outside it (absolute paths, ``..``, links)."""
    dest = dest.resolve()

    def inside(member: str) -> Path:
        path = (dest / member).resolve()
        if dest != path and dest not in path.parents:
            raise UserError(f"archive {archive} has an unsafe member '{member}': not extracting it")
        return path

    try:
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    inside(member)
                zf.extractall(dest)
        else:
            with tarfile.open(archive) as tf:
                for entry in tf.getmembers():
                    inside(entry.name)
                    if not (entry.isfile() or entry.isdir()):
                        raise UserError(f"archive {archive} holds a link or device '{entry.name}': "
                                        "not extracting it")
                tf.extractall(dest, filter="data")
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise UserError(f"cannot unpack {archive} ({exc}): delete it and download it again") from exc


def cache_dir() -> Path:
    """Folder of preprocessed arrays: ``$BENCHKIT_CACHE`` or ``~/.cache/benchkit``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "benchkit")


def source_fingerprint(paths: Iterable[Path]) -> list:
    """(path, size, modification time) of each source file or folder: what the cache key tracks."""
    rows = []
    for path in paths:
        stat = path.stat()
        rows.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return rows


def cached_array(key: dict, build: Callable[[], np.ndarray]) -> np.ndarray:
    """Return the uint8 array described by ``key``, building and caching it on first use.

    ``key`` is any JSON-serialisable description (dataset, split, size, source fingerprint); the
    array comes back memory-mapped read-only. ``build`` must return a ``uint8`` array.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    label = "-".join(str(key[k]) for k in ("dataset", "split", "size") if k in key)
    path = cache_dir() / f"{label}-{digest}.npy"
    if path.is_file():
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache file is rebuilt, never trusted
    array = build()
    if array.dtype != np.uint8:
        raise TypeError(f"cache builders must return uint8, got {array.dtype}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
        atomic_write_text(path.with_suffix(".json"), json.dumps(key, indent=2, sort_keys=True))
    except OSError:
        return array  # an unwritable cache folder only costs the rebuild next time
    return np.load(path, mmap_mode="r")


WEIGHTS_ENV = "BENCHKIT_WEIGHTS"


def weights_dir(given: str | Path | None) -> Path | None:
    """The folder searched first for pretrained weights: ``given`` (``--weights-dir``), else ``$BENCHKIT_WEIGHTS``."""
    value = given or os.environ.get(WEIGHTS_ENV)
    return Path(value) if value else None


def read_text_table(path: Path, key: str, value: str, what: str) -> dict[str, str]:
    """``{key: value}`` from a CSV with columns ``key`` and ``value``, or (``.json``) an object of
    key: value: captions by file name, prompts by image id. ``what`` names the file in the one-line
    error a bad file gets."""
    import csv

    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            table = json.loads(text)
            if not isinstance(table, dict):
                raise ValueError(f"the JSON is not an object of {key}: {value}")
            return {str(k): str(v) for k, v in table.items()}
        rows = list(csv.DictReader(text.splitlines()))
        if rows and not {key, value} <= set(rows[0]):
            raise ValueError(f"its columns are {', '.join(rows[0])}, not {key} and {value}")
        return {row[key]: row[value] for row in rows}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {path} ({exc}): give a CSV with columns {key},{value} or a JSON object "
                        f"of {key}: {value}") from None
