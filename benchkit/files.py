"""Files, for benchkit's core and for every plugin: safe replacement, content digests, the entries
of a folder a user named, and file-system-safe names.

Safe file replacement is the one place that knows how a file is written so that a reader never
sees half of it. Results, pictures, reports, checkpoints, training state and caches all use it.

A file is written to a temporary name in the same folder (so the rename stays on one file
system), then renamed over the target with ``os.replace``, which is atomic on POSIX and Windows.
An interrupted write leaves at most a hidden ``.NAME.PID.tmp`` file, never a truncated target.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from benchkit.errors import UserError, WriteError


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it replaces
    ``path`` atomically, and on error it is removed. A write that fails for the system's reasons
    (a full disk, a read-only folder) raises :class:`~benchkit.errors.WriteError` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(f"cannot write {path} ({exc.strerror or exc}): free some space or choose another "
                         "folder; files already written are intact, and the same command resumes") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` atomically (see :func:`replacing`)."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically (see :func:`replacing`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder; one that cannot be looked into (permissions) is a UserError."""
    try:
        return path.is_dir()
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror or exc}): check the permissions of it and of the "
                        "folders above it") from exc


def folder_entries(path: Path, what: str) -> list[Path]:
    """The entries of a folder the user named (``what``: "image folder", "mask folder"), sorted by
    name, hidden ones (macOS ``._*`` sidecars) left out; a missing or unreadable folder is a UserError."""
    if not is_folder(path):
        raise UserError(f"{what} {path} does not exist: check the path")
    try:
        return sorted(p for p in path.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise UserError(f"cannot read {what} {path} ({exc.strerror or exc}): check its permissions (the "
                        "folder needs read and execute rights)") from exc


@lru_cache(maxsize=1 << 16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str | Path | None) -> str | None:
    """SHA-256 of a file's bytes (a checkpoint, a prediction, a mask file), read again in a process only
    when the file's size or modification time changed."""
    if path is None:
        return None
    stat = Path(path).stat()
    return _file_digest(str(path), stat.st_size, stat.st_mtime_ns)


def file_digests(paths) -> dict[str, str]:
    """``{path: SHA-256}`` of files a cell reads, in the order given (see :func:`file_digest`)."""
    return {str(path): file_digest(path) or "" for path in paths}


def safe_name(raw: str) -> str:
    """A filesystem-safe file stem, with a hash when making it safe changed it."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", raw)
    if safe != raw:
        safe = f"{safe[:80]}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
    return safe


def cell_folder_name(dataset: str, mask: str) -> str:
    """The file-system-safe name ``DATASET__MASK`` of a (dataset, mask) pair (grids, exports)."""
    return safe_name(f"{dataset}__{mask}")
