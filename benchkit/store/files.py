"""Safe file replacement: the one place that knows how a file is written so that a reader never
sees half of it. Results, pictures, reports, checkpoints, training state and caches all use it.

A file is written to a temporary name in the same folder (so the rename stays on one file
system), then renamed over the target with ``os.replace``, which is atomic on POSIX and Windows.
An interrupted write leaves at most a hidden ``.NAME.PID.tmp`` file, never a truncated target.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from benchkit.errors import WriteError


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
