"""Process-wide settings that make CPU training faster, applied by the heavy commands.

glibc returns every large (> 32 MiB) freed block to the OS and page-faults it back in on the next
allocation; a training step allocates and frees many such activations and gradients, and on a
2-core machine the page faults cost as much as the LRN layers' arithmetic (measured in
docs/benchmarks.md). Raising the mmap and trim thresholds keeps freed blocks in the heap for reuse.
The price: the process keeps its peak memory until it exits. ALEXNET_NO_MALLOC_TUNING=1 opts out.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_tuned = False


def tune_allocator() -> bool:
    """Keep freed large blocks for reuse (glibc only). Returns whether the setting took effect."""
    global _tuned
    if _tuned or os.environ.get("ALEXNET_NO_MALLOC_TUNING"):
        return _tuned
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        return False
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))
    return _tuned
