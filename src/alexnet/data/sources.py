"""Where images come from: folders, tar shards, in-memory arrays. Each source is an index of
samples (name, label) and a `read(i)` that returns the encoded bytes (or a decoded array)."""
from __future__ import annotations

import functools
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .decode import IMAGE_EXTENSIONS

SPLIT_NAMES = {"train": ("train",), "val": ("val", "validation", "test"), "test": ("test", "val")}
ALL_SPLITS = {n for names in SPLIT_NAMES.values() for n in names}
WNID = re.compile(r"^(n\d{8})_")


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


@dataclass
class Source:
    """An indexed split: names[i] (for messages), labels[i] (-1 if unknown), classes."""
    names: list[str]
    labels: list[int]
    classes: list[str]
    channels: int = 3
    groups: list[range] = field(default_factory=list)  # contiguous index runs (tar shards)
    split: str | None = None  # the split folder this came from; None if the data has no splits

    def __len__(self) -> int:
        return len(self.names)

    def read(self, i: int):  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class FileSource(Source):
    paths: list[Path] = field(default_factory=list)

    def read(self, i: int) -> bytes:
        return self.paths[i].read_bytes()


@dataclass
class ArraySource(Source):
    """Decoded images in memory: (N, C, H, W) uint8 (CIFAR-10, Fashion-MNIST)."""
    images: np.ndarray | None = None

    def read(self, i: int) -> np.ndarray:
        return self.images[i]


@dataclass
class TarSource(Source):
    """Members of uncompressed tar shards, read in place by offset: never extracted."""
    shards: list[Path] = field(default_factory=list)
    offsets: list[tuple[int, int, int]] = field(default_factory=list)  # (shard, offset, size)
    _files: dict = field(default_factory=dict, repr=False)

    def read(self, i: int) -> bytes:
        shard, offset, size = self.offsets[i]
        key = (os.getpid(), shard)  # loader workers are forked: one handle per process
        f = self._files.get(key)
        if f is None:
            f = self._files[key] = open(self.shards[shard], "rb")
        f.seek(offset)
        return f.read(size)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = {}
        return state


# ---- image folders --------------------------------------------------------------------------
def _class_folder_source(root: Path) -> FileSource:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for label, cls in enumerate(classes):
        for dirpath, _, files in os.walk(root / cls, followlinks=True):
            for f in sorted(files):
                if is_image(f):
                    paths.append(Path(dirpath) / f)
                    labels.append(label)
    return FileSource([str(p) for p in paths], labels, classes, paths=paths)


def read_labels_file(path: Path) -> dict[str, int]:
    """Caffe's val.txt: `<file> <label>` per line."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{n}: expected '<file> <integer label>', got {line!r}")
        out[PurePosixPath(parts[0]).name] = int(parts[1])
    return out


def _flat_folder_source(root: Path, labels_file: Path | None) -> FileSource:
    paths = sorted(p for p in root.iterdir() if p.is_file() and is_image(p.name))
    if labels_file is not None:
        table = read_labels_file(labels_file)
        missing = [p.name for p in paths if p.name not in table]
        if missing:
            raise ValueError(f"{labels_file}: no label for {len(missing)} file(s) in {root}, "
                             f"e.g. {missing[0]}")
        labels = [table[p.name] for p in paths]
        classes = [str(i) for i in range(max(labels, default=-1) + 1)]
    elif paths and all(WNID.match(p.name) for p in paths):
        # ImageNet-style names <wnid>_<id>...: the class is the WordNet id
        wnids = [WNID.match(p.name).group(1) for p in paths]
        classes = sorted(set(wnids))
        index = {w: i for i, w in enumerate(classes)}
        labels = [index[w] for w in wnids]
    else:
        labels, classes = [-1] * len(paths), []
    return FileSource([str(p) for p in paths], labels, classes, paths=paths)


def folder_source(root: Path, split: str | None, labels_file: Path | None = None) -> FileSource:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    name = pick_split(root, split, {d.name for d in root.iterdir() if d.is_dir()})
    base = root / name if name else root
    has_class_dirs = any(d.is_dir() for d in base.iterdir())
    src = (_class_folder_source(base) if has_class_dirs and labels_file is None
           else _flat_folder_source(base, labels_file))
    src.split = name
    if not len(src):
        raise ValueError(f"{base}: no images found (expected <class>/*.jpg, or image files with "
                         f"--labels; extensions {', '.join(IMAGE_EXTENSIONS)})")
    return src


def pick_split(where: object, split: str | None, available: set[str]) -> str | None:
    """The folder name serving `split` among `available` top-level folders (val and test stand
    in for each other); None when there are no split folders at all."""
    present = available & ALL_SPLITS
    if split is None or not present:
        return None
    for name in SPLIT_NAMES.get(split, (split,)):
        if name in present:
            return name
    raise ValueError(f"{where}: has no '{split}' split (found {', '.join(sorted(present))})")


# ---- tar shards -----------------------------------------------------------------------------
def _safe_member(shard: Path, name: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{shard}: member {name!r} has an absolute path or '..'; refusing this shard")


@functools.lru_cache(maxsize=64)
def _index_shard(shard: str, mtime_ns: int, size: int):
    """(image members as (name, offset, size), {key: label} from .cls members) of one shard;
    cached per file version, so the train and test splits of one tar index it once."""
    members, cls_values = [], {}
    try:
        with tarfile.open(shard, "r:") as tf:
            for m in tf:
                _safe_member(Path(shard), m.name)
                if not m.isfile():
                    continue
                if m.name.endswith(".cls"):
                    text = tf.extractfile(m).read().strip()
                    if not text.lstrip(b"-").isdigit():
                        raise ValueError(f"{shard}: {m.name} should hold an integer label, got {text[:20]!r}")
                    cls_values[m.name[:-4]] = int(text)
                elif is_image(m.name):
                    members.append((m.name, m.offset_data, m.size))
    except tarfile.TarError as e:
        raise ValueError(f"{shard}: not a readable uncompressed tar ({e})") from None
    return members, cls_values


def tar_source(shards: list[Path], split: str | None) -> TarSource:
    """Class-folder layout (optionally under one top folder and train/ val/ test/ splits) or
    WebDataset layout (<key>.jpg + <key>.cls members)."""
    entries, cls_values = [], {}  # entries: (shard index, name, offset, size)
    for si, shard in enumerate(shards):
        st = shard.stat()
        members, classes_of = _index_shard(str(shard), st.st_mtime_ns, st.st_size)
        entries += [(si, *m) for m in members]
        cls_values.update({(si, k): v for k, v in classes_of.items()})
    if not entries:
        raise ValueError(f"{', '.join(map(str, shards[:3]))}: no image members found")
    names = [e[1] for e in entries]
    chosen = None
    if cls_values:  # WebDataset: labels from .cls members, class names from classes.txt if present
        labels = [cls_values.get((e[0], e[1].rsplit(".", 1)[0]), -1) for e in entries]
        names_file = shards[0].parent / "classes.txt"
        classes = (names_file.read_text().split("\n") if names_file.exists()
                   else [str(i) for i in range(max(labels) + 1)])
        classes = [c for c in classes if c]
    else:
        parts = [PurePosixPath(n).parts for n in names]
        if (all(len(p) > 2 for p in parts) and len({p[0] for p in parts}) == 1
                and parts[0][0] not in ALL_SPLITS):
            parts = [p[1:] for p in parts]  # look through one wrapping folder (cifar10/train/...)
        chosen = pick_split(shards[0], split, {p[0] for p in parts if len(p) > 2})
        if chosen is not None:
            keep = [i for i, p in enumerate(parts) if len(p) > 2 and p[0] == chosen]
            parts, entries = [parts[i][1:] for i in keep], [entries[i] for i in keep]
            names = [e[1] for e in entries]
        if any(len(p) < 2 for p in parts):
            raise ValueError(f"{shards[0]}: images must sit in <class>/ folders (or come with .cls members)")
        classes = sorted({p[0] for p in parts})
        index = {c: i for i, c in enumerate(classes)}
        labels = [index[p[0]] for p in parts]
    groups, start = [], 0
    for si in range(len(shards)):
        n = sum(1 for e in entries if e[0] == si)
        groups.append(range(start, start + n))
        start += n
    return TarSource(names, labels, classes, groups=groups, split=chosen, shards=list(shards),
                     offsets=[(e[0], e[2], e[3]) for e in entries])
