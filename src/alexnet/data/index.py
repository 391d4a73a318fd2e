"""The file index of an image folder, in numpy arrays: one byte buffer of NUL-terminated relative
paths with their offsets, and an int array of labels. No Python object per file survives the
scan, so a 1.28M-file ImageNet train folder costs about 60 MB, and loader workers forked from
the main process share those pages: reading an array touches no reference counts, whereas a
list of Path objects is copied page by page into every worker as its counts change.

The scan (os.scandir, one pass) skips what cannot be an image and counts it: FIFOs, devices and
sockets (opening a FIFO would block forever), broken symlinks and loops, and symlinks whose
target leaves the data root unless asked to follow them. A large index is cached in
$ALEXNET_CACHE/index (default ~/.cache/alexnet), keyed on the mtimes of every folder scanned:
adding or removing a file changes its folder's mtime, so a stale cache is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..fileio import cache_dir
from ..untrusted import load_npz
from .decode import IMAGE_EXTENSIONS

VERSION = 1
CACHE_MIN_FILES = 20_000  # smaller folders scan in well under a second: not worth a file
RACY_NS = 2_000_000_000  # a folder changed this close to the scan may change again unseen
SKIP_KINDS = {
    "special": "FIFOs, devices or sockets",
    "broken": "broken symlinks or symlink loops",
    "outside": "symlinks leaving the data root",
}


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def encode(strings: list[str]) -> bytes:
    """Each string NUL-terminated, file-system encoded (undecodable names survive)."""
    return os.fsencode("\0".join(strings) + "\0") if strings else b""


def starts(buf: np.ndarray, chunk: int = 1 << 22) -> np.ndarray:
    """Offsets of the NUL-terminated strings in `buf` (n + 1 entries), found a slice at a time so
    that no buffer-sized temporary is made."""
    ends = [np.flatnonzero(buf[i : i + chunk] == 0) + (i + 1) for i in range(0, len(buf), chunk)]
    return np.concatenate([np.zeros(1, np.int64), *ends]).astype(np.int64, copy=False)


def pack(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(buffer, offsets): string i is buf[offsets[i] : offsets[i + 1] - 1], NUL-terminated."""
    buf = np.frombuffer(encode(strings), np.uint8)
    return buf, starts(buf)


class Names(Sequence):
    """names[i] -> prefix + the i-th string of a packed buffer, decoded when asked for."""

    def __init__(self, buf: np.ndarray, offsets: np.ndarray, prefix: str = ""):
        self.buf, self.offsets, self.prefix = buf, offsets, prefix

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def raw(self, i: int) -> bytes:
        return self.buf[self.offsets[i] : self.offsets[i + 1] - 1].tobytes()

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} names")
        return self.prefix + os.fsdecode(self.raw(i % n))

    def __eq__(self, other) -> bool:
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"Names({len(self)} under {self.prefix!r})"


@dataclass
class Scan:
    """What one scan of a folder found; paths are relative to `base`."""

    base: str
    flat: bool  # images directly in base (no class folders)
    classes: list[str]  # class folders holding images, sorted
    buf: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray  # position in `classes` (-1 in a flat folder)
    empty: list[str] = field(default_factory=list)  # class folders without images
    loose: int = 0  # images beside class folders, not in one (ignored)
    skipped: dict = field(default_factory=dict)  # kind -> [count, an example]
    dirs: list[str] = field(default_factory=list)  # every folder read ("" = base) ...
    mtimes: list[int] = field(default_factory=list)  # ... and its mtime: the cache key

    @property
    def names(self) -> Names:
        return Names(self.buf, self.offsets, self.base.rstrip(os.sep) + os.sep)


class _Walker:
    """os.scandir with the symlink rules; records every folder's mtime."""

    def __init__(self, base: str, root: str, follow: bool):
        self.base, self.follow = base, follow
        self.root = os.path.realpath(root)
        self.skipped: dict[str, list] = {}
        self.dirs: list[str] = []
        self.mtimes: list[int] = []

    def skip(self, kind: str, path: str) -> None:
        entry = self.skipped.setdefault(kind, [0, path])
        entry[0] += 1

    def kind(self, e: os.DirEntry) -> str | None:
        """'dir', 'file', or None (skipped and counted)."""
        if not e.is_symlink():
            if e.is_dir(follow_symlinks=False):
                return "dir"
            if e.is_file(follow_symlinks=False):
                return "file"
            self.skip("special", e.path)
            return None
        try:
            st = os.stat(e.path)  # ELOOP for a loop, ENOENT for a dangling link
        except OSError:
            self.skip("broken", e.path)
            return None
        real = os.path.realpath(e.path)
        if not self.follow and real != self.root and not real.startswith(self.root + os.sep):
            self.skip("outside", e.path)
            return None
        if stat.S_ISDIR(st.st_mode):
            return "dir"
        if stat.S_ISREG(st.st_mode):
            return "file"
        self.skip("special", e.path)
        return None

    def listdir(self, rel: str, st: os.stat_result | None = None) -> list[tuple[str, str]]:
        """[(name, kind)] of one folder, hidden entries left out (macOS ._x.jpg, .git)."""
        path = os.path.join(self.base, rel) if rel else self.base
        self.dirs.append(rel)
        self.mtimes.append((st or os.stat(path)).st_mtime_ns)
        out = []
        with os.scandir(path) as it:
            for e in it:
                if not e.name.startswith("."):
                    k = self.kind(e)
                    if k:
                        out.append((e.name, k))
        return out

    def images(self, rel: str) -> list[str]:
        """Image paths under folder `rel`, recursively, relative to base. A folder already on the
        current path (a symlink to an ancestor) is a loop: skipped and counted."""
        out, stack = [], [(rel, frozenset())]
        while stack:
            d, ancestors = stack.pop()
            st = os.stat(os.path.join(self.base, d))
            ident = (st.st_dev, st.st_ino)
            if ident in ancestors:
                self.skip("broken", os.path.join(self.base, d))
                continue
            for name, k in self.listdir(d, st):
                if k == "file":
                    if is_image(name):
                        out.append(f"{d}/{name}")
                else:
                    stack.append((f"{d}/{name}", ancestors | {ident}))
        out.sort()
        return out


def scan(
    base: str | Path, root: str | Path | None = None, follow_symlinks: bool = False, flat: bool = False
) -> Scan:
    """Index `base`: class folders (<class>/**/*.jpg) or, when it has none (or `flat`), the
    images directly in it. `root` is the data root that symlinks may not leave."""
    base = os.fspath(base)
    w = _Walker(base, os.fspath(root or base), follow_symlinks)
    top = w.listdir("")
    dirs = sorted(n for n, k in top if k == "dir")
    files = sorted(n for n, k in top if k == "file" and is_image(n))
    if flat or not dirs:
        buf, offsets = pack(files)
        return Scan(
            base,
            True,
            [],
            buf,
            offsets,
            np.full(len(files), -1, np.int64),
            skipped=w.skipped,
            dirs=w.dirs,
            mtimes=w.mtimes,
        )
    classes, empty, counts = [], [], []
    blob = bytearray()  # grows in place (mremap): no per-folder pieces left to fragment the heap
    for d in dirs:
        paths = w.images(d)
        if not paths:
            empty.append(d)
            continue
        blob += encode(paths)
        classes.append(d)
        counts.append(len(paths))
    buf = np.frombuffer(blob, np.uint8)
    offsets = starts(buf)
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), counts)
    return Scan(base, False, classes, buf, offsets, labels, empty, len(files), w.skipped, w.dirs, w.mtimes)


def image_tree(base: str | Path, follow_symlinks: bool = False) -> tuple[list[str], dict]:
    """(every image under `base` at any depth, relative to it and sorted; what was skipped), by
    the scan's symlink rules: nothing that resolves outside `base` unless asked to follow."""
    base = os.fspath(base)
    w = _Walker(base, base, follow_symlinks)
    top = w.listdir("")
    files = sorted(n for n, k in top if k == "file" and is_image(n))
    for d in sorted(n for n, k in top if k == "dir"):
        files += w.images(d)
    return files, w.skipped


# ---- the cache ------------------------------------------------------------------------------
def cache_path(base: str, root: str, follow: bool, flat: bool) -> Path:
    key = json.dumps(
        [VERSION, os.path.realpath(base), os.path.realpath(root), follow, flat, IMAGE_EXTENSIONS]
    )
    return cache_dir() / "index" / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")


def cached_scan(
    base: str | Path, root: str | Path | None = None, follow_symlinks: bool = False, flat: bool = False
) -> Scan:
    """scan(), from the cache when no folder has changed since; large scans are cached."""
    base, root = os.fspath(base), os.fspath(root or base)
    path = cache_path(base, root, follow_symlinks, flat)
    hit = load_cache(path, base) if path.exists() else None
    if hit is not None:
        return hit
    start = time.time_ns()
    s = scan(base, root, follow_symlinks, flat)
    if len(s.labels) >= CACHE_MIN_FILES and max(s.mtimes) < start - RACY_NS:
        save_cache(s, path)
    return s


def save_cache(s: Scan, path: Path) -> None:
    meta = {
        "version": VERSION,
        "base": os.path.realpath(s.base),
        "flat": s.flat,
        "classes": s.classes,
        "empty": s.empty,
        "loose": s.loose,
        "skipped": s.skipped,
        "dirs": s.dirs,
        "mtimes": s.mtimes,
    }
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(
                f,
                meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                buf=s.buf,
                offsets=s.offsets,
                labels=s.labels,
            )
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache folder: the index is still good, just not kept
        tmp.unlink(missing_ok=True)


def escapes(buf: np.ndarray, offsets: np.ndarray, chunk: int = 1 << 22) -> bool:
    """Whether a path is absolute or has a '..' component: it would leave the folder. Candidate
    '..' pairs are found a slice at a time (vectorised), then their neighbours checked."""
    if len(buf) and np.any(buf[offsets[:-1]] == ord("/")):
        return True
    dot, bound = ord("."), (0, ord("/"))
    for i in range(0, max(len(buf) - 1, 0), chunk):
        part = buf[i : i + chunk + 1]
        for j in np.flatnonzero((part[:-1] == dot) & (part[1:] == dot)) + i:
            if (j == 0 or buf[j - 1] in bound) and (j + 2 == len(buf) or buf[j + 2] in bound):
                return True
    return False


_EXPECTED = {"meta": np.uint8, "buf": np.uint8, "offsets": np.int64, "labels": np.int64}


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The cache's arrays, each 1-D of its expected dtype; every declared size is checked
    against the bytes stored before anything is allocated (load_npz): the file is not trusted."""
    arrays = load_npz(path)
    if set(arrays) != set(_EXPECTED) or any(
        arrays[k].dtype != np.dtype(t) or arrays[k].ndim != 1 for k, t in _EXPECTED.items()
    ):
        raise ValueError("unexpected members")
    return arrays


def load_cache(path: Path, base: str) -> Scan | None:
    """The cached scan if it is intact and every folder it read still has its mtime; else None."""
    try:
        a = _read_arrays(path)
        meta = json.loads(a["meta"].tobytes())
        buf, offsets, labels = a["buf"], a["offsets"], a["labels"]
        classes, dirs, mtimes = meta["classes"], meta["dirs"], meta["mtimes"]
        n = len(labels)
        ok = (
            meta["version"] == VERSION
            and meta["base"] == os.path.realpath(base)
            and isinstance(meta["flat"], bool)
            and all(isinstance(c, str) for c in classes + dirs + meta["empty"])
            and all(type(t) is int for t in mtimes)
            and len(dirs) == len(mtimes)
            and dirs[:1] == [""]
            and not any(".." in d.split("/") or d.startswith("/") for d in dirs)
            and type(meta["loose"]) is int
            and isinstance(meta["skipped"], dict)
            and all(
                isinstance(v, list)
                and len(v) == 2
                and type(v[0]) is int
                and isinstance(v[1], str)
                and k in SKIP_KINDS
                for k, v in meta["skipped"].items()
            )
            and len(offsets) == n + 1
            and offsets[0] == 0
            and offsets[-1] == len(buf)
            and bool(np.all(np.diff(offsets) > 1))
            and np.array_equal(starts(buf), offsets)
            and not escapes(buf, offsets)
            and (n == 0 or (labels.min() >= -1 and labels.max() < len(classes)))
        )
        if not ok:
            return None
        for d, t in zip(dirs, mtimes):
            if os.stat(os.path.join(base, d) if d else base).st_mtime_ns != t:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile, EOFError):
        return None  # damaged, foreign or stale: scan again (and overwrite it)
    return Scan(
        base,
        meta["flat"],
        classes,
        buf,
        offsets,
        labels,
        meta["empty"],
        meta["loose"],
        meta["skipped"],
        dirs,
        mtimes,
    )
