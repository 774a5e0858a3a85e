"""glibc's memory allocator, set up for batches of large tensors.

glibc hands every allocation above its mmap threshold (which adapts, but never beyond 32 MiB) a
fresh mapping of its own and returns it to the system when it is freed. A batch of 64 RGB images of
256 px is 48 MiB of float32, so every such tensor of every batch (the composites, the masked inputs,
a network's activations) would fault in each of its pages anew. :func:`keep_freed_memory` raises the
mmap and trim thresholds once per process, so that freed memory stays in the process for the next
batch; the process keeps its peak memory instead of returning it between batches. Where the C
library is not glibc (macOS, Windows, musl), nothing changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers in glibc's malloc.h
MMAP_THRESHOLDS = (1 << 30, 32 << 20)  # the first one this glibc accepts (older ones cap it at 32 MiB)


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; whether they were raised."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    if not any(libc.mallopt(M_MMAP_THRESHOLD, value) for value in MMAP_THRESHOLDS):
        return False
    return bool(libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))
