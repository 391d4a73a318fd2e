"""Process-wide settings that make CPU training faster, applied by `alexnet train` and `bench`.

glibc returns every freed block above its mmap threshold (dynamic, at most 32 MiB) to the OS and
page-faults it back in on the next allocation; a training step allocates and frees many such
activations and gradients (conv1's output alone is 74 MB at batch 64). Raising the mmap and trim
thresholds keeps freed blocks in the heap for reuse. It pays: AlexNet's training step at batch 64,
tuned vs untuned in separate processes taking turns, five each (benchmarks/memory.py --allocator 5,
2-core AMD EPYC Zen 5, shared): median 8.1 vs 6.4 img/s, 30 vs 36 CPU s per run, 0.47 M vs
3.1 M page faults, for 0.34 GB more peak RSS (docs/benchmarks.md, "Memory").

A heap that keeps what is freed stays bounded only while the same sizes come back (a training
step). Where they do not, it grew without bound (issue 11: a bare `alexnet train --model
cifar_convnet` at 256 px grew by ~0.5 GB/s until killed), hence three rules:
- No big one-off transients in a tuned process: the statistics pass widened each batch of 256
  images to float64, three 400 MB blocks a batch around small long-lived sums; each new block no
  longer fitted the holes (4.7 GB of heap holding 91 MB after 10 batches). data/stats.py now sums
  in 16 MB chunks.
- Forked children (loader workers) are not tuned: each collated batch (50 MB), freed after its
  copy into shared memory, stayed in the worker's heap (+24 MB a batch per worker). They get a
  4 MiB threshold, so batches are mmap'd as an untuned glibc does it there.
- The free heap is trimmed before each fork: a child maps every resident page of its parent, and
  the dead activations it inherited became its own copies as the parent reused them (AlexNet,
  ImageNet sample, 6 steps: peak PSS of the tree 4.7 GB untrimmed, 3.7 GB trimmed, 3.5 untuned).
ALEXNET_NO_MALLOC_TUNING=1 opts out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# What forked children (loader workers) get instead: every block of 4 MiB or more (a collated
# batch) is mmap'd and unmapped on free, as an untuned glibc does it in these processes.
_CHILD_MMAP, _CHILD_TRIM = 4 << 20, 8 << 20
_tuned = _hooked = False


@functools.lru_cache(maxsize=1)  # found once (find_library may run ldconfig), then inherited by forks
def _mallopt():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        return None


def _trim_before_fork() -> None:
    """Hand the free heap back before forking: a child maps every resident page of its parent,
    and the pages of dead activations that the parent then reuses become the child's own copies."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _untune_child() -> None:
    global _tuned
    mallopt = _mallopt()
    if _tuned and mallopt is not None:
        _tuned = False
        mallopt(_M_MMAP_THRESHOLD, _CHILD_MMAP)
        mallopt(_M_TRIM_THRESHOLD, _CHILD_TRIM)


def tune_allocator() -> bool:
    """Keep freed large blocks for reuse (glibc only): call it once before a CPU training loop of
    your own, as `alexnet train` does; with a channels_last model and `SGD(fused=True)` such a loop
    runs at `alexnet train`'s step speed (benchmarks/user_loop.py, docs/guide.md "Python API").
    Process-wide; forked loader workers are left untuned. Returns
    whether the setting took effect (False on other C libraries or with ALEXNET_NO_MALLOC_TUNING=1)."""
    global _tuned, _hooked
    if _tuned or os.environ.get("ALEXNET_NO_MALLOC_TUNING"):
        return _tuned
    mallopt = _mallopt()
    if mallopt is None:
        return False
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))
    if _tuned and not _hooked:
        os.register_at_fork(before=_trim_before_fork, after_in_child=_untune_child)
        _hooked = True
    return _tuned
