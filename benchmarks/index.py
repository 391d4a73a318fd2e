"""Time and memory of indexing an ImageNet-sized image folder (issue 13 §3): 1,281,167 empty
files in 1,000 class folders, as in ILSVRC-2012's train split.

    python benchmarks/index.py [--dir DIR] [--files 1281167] [--classes 1000]

Builds the tree in DIR (default: a temporary folder, removed afterwards; creating it takes a
minute or two), then, each in a fresh process after `import alexnet.data`:
  first    open_source(DIR): a full os.scandir pass, writing the cache
  cached   the same again: the index read from the cache
  old      the index as it was before (os.walk, one Path object per file), for comparison
and reports wall and CPU time (user + system: steadier on a shared machine), the RSS the index keeps (after minus before) and the peak RSS increase.
A forked child then touches every entry (as a loader worker does) and reports the memory it
had to copy (Private_Dirty growth): numpy arrays stay shared, a list of Paths does not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time


def make_tree(root: str, files: int, classes: int) -> None:
    per, extra = divmod(files, classes)
    for c in range(classes):
        wnid = f"n{1440764 + c * 997:08d}"
        d = os.path.join(root, wnid)
        os.makedirs(d, exist_ok=True)
        for i in range(per + (c < extra)):
            os.close(os.open(os.path.join(d, f"{wnid}_{i}.JPEG"), os.O_CREAT | os.O_WRONLY, 0o644))
    old = time.time() - 10  # older than the cache's racy window, as a real dataset is
    for dirpath, _, _ in os.walk(root):
        os.utime(dirpath, (old, old))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # Linux: VmHWM := the current RSS
        f.write("5")


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def private_dirty_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return sum(int(line.split()[1]) for line in f if line.startswith("Private_Dirty")) / 1024


def old_index(root: str):
    """The index before issue 13: sorted class folders, os.walk, a Path per file."""
    from pathlib import Path

    from alexnet.data.index import is_image

    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for label, cls in enumerate(classes):
        for dirpath, _, names in os.walk(root / cls, followlinks=True):
            for f in sorted(names):
                if is_image(f):
                    paths.append(Path(dirpath) / f)
                    labels.append(label)
    return paths, labels


def child(root: str, how: str) -> None:
    """One measurement, printed as JSON (run in a fresh interpreter)."""
    import gc

    from alexnet.data import open_source

    gc.collect()
    before = rss_mb()
    reset_peak()
    t, cpu = time.perf_counter(), time.process_time()
    if how == "old":
        paths, labels = old_index(root)
        n = len(paths)
        touch = lambda: sum(len(p.name) for p in paths) + sum(labels)  # noqa: E731
    else:
        src = open_source(root, None)
        n = len(src)
        touch = lambda: sum(len(src.names.raw(i)) for i in range(n)) + int(src.labels.sum())  # noqa: E731
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    gc.collect()
    after, peak = rss_mb(), peak_mb()
    # a forked "loader worker" touches every entry once; what it copies is its private memory
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        base = private_dirty_mb(os.getpid())
        touch()
        os.write(w, json.dumps(private_dirty_mb(os.getpid()) - base).encode())
        os._exit(0)
    os.close(w)
    copied = json.loads(os.read(r, 64))
    os.waitpid(pid, 0)
    print(
        json.dumps(
            {
                "how": how,
                "n": n,
                "seconds": seconds,
                "cpu": cpu,
                "kept_mb": after - before,
                "peak_mb": peak - before,
                "worker_copied_mb": copied,
            }
        )
    )


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=None, help="build (or reuse) the tree here instead of a temporary folder")
    p.add_argument("--files", type=int, default=1_281_167)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(*args.child)
    tmp = None if args.dir else tempfile.mkdtemp(prefix="alexnet-index-")
    root = args.dir or os.path.join(tmp, "train")
    cache = tempfile.mkdtemp(prefix="alexnet-index-cache-")
    try:
        if not os.path.isdir(root) or not os.listdir(root):
            t = time.perf_counter()
            make_tree(root, args.files, args.classes)
            print(
                f"# built {args.files:,} empty files in {args.classes:,} folders in "
                f"{time.perf_counter() - t:.0f} s under {root}",
                flush=True,
            )
        env = dict(os.environ, ALEXNET_CACHE=cache)
        print(
            f"# {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"warm dentry cache; fresh process per row"
        )
        print(
            f"{'index':<8} {'files':>10} {'wall':>8} {'cpu':>8} {'kept':>9} {'peak':>9} {'worker copied':>14}"
        )
        for how in ("first", "cached", "old"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", root, how],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{how:<8} {r['n']:>10,} {r['seconds']:>7.2f}s {r['cpu']:>7.2f}s {r['kept_mb']:>7.0f}MB "
                f"{r['peak_mb']:>7.0f}MB {r['worker_copied_mb']:>12.0f}MB",
                flush=True,
            )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
