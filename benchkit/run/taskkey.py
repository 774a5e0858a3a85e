"""The one reuse key: a content hash of what a piece of work depends on.

A cell's key hashes its canonical specs (dataset, mask, method, with every non-default option), the
seed, the images (count and the dataset's content digest), the checkpoint's bytes, and the versions
of benchkit and of the plugins' distributions. A shard's key adds its image positions and the
metrics it scores. Batch size, device, executor and worker count are left out on purpose: results do
not depend on them (within the float tolerance stated in the README). "Is this done?" is one lookup
of that key; the per-process caches of workers are keyed the same way.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any


def content_key(data: Any) -> str:
    """SHA-256 (hex) of ``data`` written as canonical JSON (sorted keys; tuples as lists)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


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
