"""Small C kernels compiled on first use and called through ctypes.

Why not a torch C++ extension: those need torch's headers, ninja and a minute of compiling, and
break across torch builds. These kernels are plain C on raw pointers: one `cc` call (about a
second), cached per source, compiler and CPU in `$ALEXNET_CACHE` (default ~/.cache/alexnet).
Where no compiler is found, or ALEXNET_NO_NATIVE=1, callers fall back to torch ops.

Threads: where torch runs on GNU OpenMP (Linux wheels), a kernel asking for OpenMP is built with
-fopenmp and linked to the libgomp torch has already loaded (same soname), so its parallel loops
run on torch's own worker threads: no second pool competing with them for the cores, and no
Python in the loop. Elsewhere `parallel_for` splits the work over a small thread pool.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ..fileio import cache_dir

FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared"]
_libs: dict[str, ctypes.CDLL | None] = {}
_lock = threading.Lock()


def _cpu_id() -> str:
    try:  # -march=native code must not be reused on a different CPU (shared home directories)
        text = Path("/proc/cpuinfo").read_text()
        return next((line for line in text.splitlines() if line.startswith("flags")), text[:2000])
    except OSError:
        return platform.processor()


def torch_libgomp() -> bool:
    """True when this process runs torch's parallel ops on GNU libgomp (loaded by `import torch`)."""
    if "OpenMP" not in torch.__config__.parallel_info():
        return False
    try:
        return "/libgomp" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def load(source: Path, openmp: bool = False) -> ctypes.CDLL | None:
    """Compile `source` (once) and load it; None if that is impossible here. `openmp`: build
    with -fopenmp where that shares torch's libgomp (else the kernel runs single-threaded per
    call and the caller splits the work with `parallel_for`)."""
    key = f"{source}:{openmp}"
    with _lock:
        if key not in _libs:
            lib = None
            if openmp and not os.environ.get("ALEXNET_NO_OPENMP") and torch_libgomp():
                lib = _compile_and_load(source, ["-fopenmp"], quiet=True)
            _libs[key] = lib or _compile_and_load(source)
        return _libs[key]


def _compile_and_load(source: Path, extra: list[str] = (), quiet: bool = False) -> ctypes.CDLL | None:
    if os.environ.get("ALEXNET_NO_NATIVE"):
        return None
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        warnings.warn(
            f"no C compiler ({cc!r}) found: {source.name} falls back to slower torch ops", stacklevel=3
        )
        return None
    code = source.read_bytes()
    for name in re.findall(rb'^#include "([\w.]+)"', code, re.M):  # local includes change the build too
        code += (source.parent / name.decode()).read_bytes()
    flags = [*FLAGS, *extra]
    digest = hashlib.sha256(code + " ".join([cc, *flags, platform.machine(), _cpu_id()]).encode())
    out = cache_dir() / "kernels" / f"{source.stem}-{digest.hexdigest()[:16]}.so"
    try:
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
                tmp_so = Path(tmp) / out.name
                subprocess.run(
                    [cc, *flags, str(source), "-o", str(tmp_so), "-lm"],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                os.replace(tmp_so, out)  # atomic: concurrent first uses never see half a file
        return ctypes.CDLL(str(out))
    except (OSError, subprocess.CalledProcessError) as e:
        if quiet:  # an optional variant (OpenMP): the caller falls back to the plain build
            return None
        detail = getattr(e, "stderr", "") or str(e)
        warnings.warn(
            f"could not build {source.name} ({detail.strip()[:200]}); using torch ops", stacklevel=3
        )
        return None


_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def parallel_for(n_items: int, threads: int, fn: Callable[[int, int], None]) -> None:
    """Run fn(i0, i1) over [0, n_items) split in `threads` contiguous ranges; ctypes releases
    the GIL, so the ranges run concurrently."""
    global _pool, _pool_size
    threads = max(1, min(threads, n_items))
    if threads == 1:
        fn(0, n_items)
        return
    if _pool is None or _pool_size < threads - 1:
        _pool_size = threads - 1
        _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="alexnet-native")
    bounds = [n_items * i // threads for i in range(threads + 1)]
    futures = [_pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, threads)]
    fn(bounds[0], bounds[1])
    for f in futures:
        f.result()
