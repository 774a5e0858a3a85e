"""The one reuse key: a content hash of what a piece of work depends on.

A cell's key hashes its canonical specs (dataset, mask, method, with every non-default option), the
seed, the images (count and the dataset's content digest), the checkpoint's bytes, the bytes of every
other file the cell reads (``Method.input_files``, ``MaskGenerator.input_files``: predictions, mask
images, model files; digests by :func:`benchkit.files.file_digest`), and the versions of benchkit
and of the plugins' distributions. A shard's key adds its image positions and the
metrics it scores. Batch size, device, executor and worker count are left out on purpose: results do
not depend on them (within the float tolerance stated in the README). "Is this done?" is one lookup
of that key; the per-process caches of workers are keyed the same way.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


def content_key(data: Any) -> str:
    """SHA-256 (hex) of ``data`` written as canonical JSON (sorted keys; tuples as lists)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()
