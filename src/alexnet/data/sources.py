"""Where images come from: folders, tar shards, in-memory arrays. Each source is an index of
samples (names[i], labels[i]) and a `read(i)` that returns the encoded bytes (or a decoded array).

Classes are matched by name. A source first numbers its own classes (sorted folder names, a
classes.txt, CIFAR's batches.meta); `apply_classes` then maps them onto one reference list — the
network's (its card), or the training split's — so that an empty `train/aaa` folder, a
validation split with fewer classes, or another dataset's folders never shift a label. A class
the reference does not have is an error that names it.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import tarfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import BadInput
from ..imagenet import imagenet_categories
from ..untrusted import text as read_text
from .decode import IMAGE_EXTENSIONS, BadImage
from .index import SKIP_KINDS, Names, cached_scan, is_image, pack

SPLIT_NAMES = {"train": ("train",), "val": ("val", "validation", "test"), "test": ("test", "val")}
ALL_SPLITS = {n for names in SPLIT_NAMES.values() for n in names}
WNID = re.compile(r"^(n\d{8})_")
MAX_CLASSES = 1_000_000  # a label file naming class 10^12 is refused, not allocated for


@dataclass
class Source:
    """An indexed split: names[i] (for messages), labels[i] (-1 if unknown), classes."""

    names: Sequence[str]
    labels: np.ndarray  # int64 positions in `classes`, -1 for no label
    classes: list[str]
    channels: int = 3
    groups: list[range] = field(default_factory=list)  # contiguous index runs (tar shards)
    split: str | None = None  # the split folder this came from; None if the data has no splits
    numbered: bool = False  # labels are bare class numbers (val.txt, .cls): no names to match
    train_classes: list[str] | None = field(default=None, repr=False)  # the training split's, if any

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, i: int):  # pragma: no cover - abstract
        raise NotImplementedError


def read_regular(path: bytes | str, name: str) -> bytes:
    """A file's bytes, refusing anything but a regular file: O_NONBLOCK so that a FIFO put in
    place of an image after the scan cannot block a loader worker forever."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadImage(f"{name}: not a regular file")
        return f.read()


@dataclass
class FileSource(Source):
    base: bytes = b""  # names are relative to this folder

    def read(self, i: int) -> bytes:
        raw = self.names.raw(i) if isinstance(self.names, Names) else os.fsencode(self.names[i])
        return read_regular(os.path.join(self.base, raw), self.names[i])


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
    shard: np.ndarray | None = None  # per sample: shard number, data offset, size
    offset: np.ndarray | None = None
    size: np.ndarray | None = None
    _files: dict = field(default_factory=dict, repr=False)

    def read(self, i: int) -> bytes:
        shard = int(self.shard[i])
        key = (os.getpid(), shard)  # loader workers are forked: one handle per process
        f = self._files.get(key)
        if f is None:
            f = self._files[key] = open(self.shards[shard], "rb")
        f.seek(int(self.offset[i]))
        return f.read(int(self.size[i]))

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = {}
        return state


# ---- one class list ---------------------------------------------------------------------------
def _some(items, n: int = 5) -> str:
    items = list(items)
    shown = ", ".join(repr(str(x)) for x in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def apply_classes(
    src: Source, reference: Sequence[str] | None, where: str, reference_from: str = "the class list given"
) -> Source:
    """Relabel `src` by name onto `reference` (its classes become that list). Bare class numbers
    index the reference directly and are bounds-checked against it."""
    if reference is None:
        return src
    reference = [str(c) for c in reference]
    if len(reference) > MAX_CLASSES:
        raise BadInput(f"{reference_from}: {len(reference):,} classes is more than {MAX_CLASSES:,}")
    labels = src.labels
    if src.numbered:
        bad = np.flatnonzero(labels >= len(reference))
        if len(bad):
            raise BadInput(
                f"{where}: {src.names[bad[0]]} has label {labels[bad[0]]}, but "
                f"{reference_from} has {len(reference)} classes (0..{len(reference) - 1})"
            )
    else:
        used = np.unique(labels[labels >= 0])
        index: dict[str, int] = {}
        twice = set()
        for i, c in enumerate(reference):
            if c in index:
                twice.add(c)
            index.setdefault(c, i)
        names = [src.classes[u] for u in used]
        missing = [c for c in names if c not in index]
        wnids = _imagenet_wnids(reference) if missing else {}
        if missing and all(c in wnids for c in names):
            index, twice, missing = wnids, set(), []  # val/<wnid>/ folders, weights named by word
        if missing:
            hint = ""
            if all(WNID.match(c + "_") for c in missing) and not any(
                WNID.match(c + "_") for c in reference[:50]
            ):
                hint = (
                    "; this data names its classes by WordNet id, the reference does not "
                    "(a labels file, e.g. Caffe's val.txt, gives class numbers instead)"
                )
            raise BadInput(
                f"{where}: class(es) {_some(missing)} not among the {len(reference)} classes "
                f"of {reference_from} ({_some(reference, 4)}){hint}"
            )
        ambiguous = [c for c in names if c in twice]
        if ambiguous:
            raise BadInput(
                f"{where}: class(es) {_some(ambiguous)} appear more than once in "
                f"{reference_from}; cannot match them by name"
            )
        lut = np.full(len(src.classes), -1, np.int64)
        lut[used] = [index[c] for c in names]
        labels = np.where(labels >= 0, lut[np.maximum(labels, 0)], -1)
    src.labels, src.classes, src.numbered = labels, reference, False
    return src


def _imagenet_wnids(reference: list[str]) -> dict[str, int]:
    """ILSVRC-2012's 1000 classes named by their words, in the standard order (as the cards of
    torchvision and Caffe weights name them; some words repeat, e.g. 'crane'): their WordNet ids,
    which ImageNet's own folders use, index them too. Empty for any other list."""
    if len(reference) != 1000:
        return {}
    cats = imagenet_categories()
    if any(r != name for r, (_, name) in zip(reference, cats)):
        return {}
    return {wnid: i for i, (wnid, _) in enumerate(cats)}


def numbered_classes(labels: np.ndarray) -> list[str]:
    """Names for bare class numbers 0..max: their decimal strings."""
    return [str(i) for i in range(int(labels.max(initial=-1)) + 1)]


def _report(where: str, empty: list[str], skipped: dict, loose: int = 0) -> None:
    """One warning for what a folder scan left out, so that nothing vanishes unsaid."""
    parts = []
    if empty:
        parts.append(f"{len(empty)} class folder(s) without images left out of the classes: {_some(empty)}")
    if loose:
        parts.append(f"{loose} image(s) lying beside the class folders, in none, ignored")
    for kind, (n, example) in skipped.items():
        extra = " (--follow-symlinks or ALEXNET_FOLLOW_SYMLINKS=1 follows them)" if kind == "outside" else ""
        parts.append(f"{n} {SKIP_KINDS.get(kind, kind)} skipped, e.g. {example}{extra}")
    if parts:
        warnings.warn(f"{where}: " + "; ".join(parts), stacklevel=3)


# ---- image folders --------------------------------------------------------------------------
def read_labels_file(path: Path) -> dict[str, int]:
    """Caffe's val.txt: `<file> <label>` per line; labels are class numbers 0..MAX_CLASSES-1."""
    out = {}
    for n, line in enumerate(read_text(path, f"--labels {path}").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].isdigit() or len(parts[1]) > 7 or int(parts[1]) >= MAX_CLASSES:
            raise BadInput(
                f"{path}:{n}: expected '<file> <class number 0..{MAX_CLASSES - 1}>', got {line[:200]!r}"
            )
        out[PurePosixPath(parts[0]).name] = int(parts[1])
    return out


def _flat(base: Path, scan, labels_file: Path | None) -> FileSource:
    names = scan.names
    common = dict(base=os.fsencode(base))
    files = [os.fsdecode(names.raw(i)) for i in range(len(names))]
    if labels_file is not None:
        table = read_labels_file(labels_file)
        missing = [f for f in files if f not in table]
        if missing:
            raise BadInput(f"{labels_file}: no label for {len(missing)} file(s) in {base}, e.g. {missing[0]}")
        labels = np.array([table[f] for f in files], np.int64)
        return FileSource(names, labels, numbered_classes(labels), numbered=True, **common)
    wnids = [WNID.match(f) for f in files]
    if files and all(wnids):
        # ImageNet-style names <wnid>_<id>[_<word>].jpg: the class is the WordNet id. (The trailing
        # word of some samples is a display name, not a class number: it is not used.)
        ids = [m.group(1) for m in wnids]
        classes = sorted(set(ids))
        index = {w: i for i, w in enumerate(classes)}
        return FileSource(names, np.array([index[w] for w in ids], np.int64), classes, **common)
    return FileSource(names, np.full(len(files), -1, np.int64), [], **common)


def follow_default(follow: bool | None) -> bool:
    if follow is not None:
        return bool(follow)
    return os.environ.get("ALEXNET_FOLLOW_SYMLINKS", "") not in ("", "0")


def folder_source(
    root: Path,
    split: str | None,
    labels_file: Path | None = None,
    follow_symlinks: bool | None = None,
    train_default: bool = True,
) -> FileSource:
    """`train_default`: for a split other than train, also list the training split's classes
    (src.train_classes), the default reference (one more scan, cached for large folders)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    follow = follow_default(follow_symlinks)
    available = {d.name for d in root.iterdir() if not d.name.startswith(".") and d.is_dir()}
    name = pick_split(root, split, available)
    base = root / name if name else root
    real, top = os.path.realpath(base), os.path.realpath(root)
    if not follow and real != top and not real.startswith(top + os.sep):
        raise BadInput(
            f"{base}: a symlink leaving {root}; --follow-symlinks (or ALEXNET_FOLLOW_SYMLINKS=1) follows it"
        )
    scan = cached_scan(base, root, follow, flat=labels_file is not None)
    _report(str(base), scan.empty, scan.skipped, scan.loose)
    if scan.flat:
        src = _flat(base, scan, labels_file)
    else:
        src = FileSource(scan.names, scan.labels, scan.classes, base=os.fsencode(base))
    src.split = name
    if train_default and name and name != "train" and "train" in available:
        src.train_classes = cached_scan(root / "train", root, follow).classes or None
    if not len(src):
        hint = (
            f"; {scan.skipped['outside'][0]} symlink(s) leaving {root} were skipped "
            f"(--follow-symlinks follows them)"
            if "outside" in scan.skipped
            else ""
        )
        raise BadInput(
            f"{base}: no images found (expected <class>/*.jpg, or image files with "
            f"--labels; extensions {', '.join(IMAGE_EXTENSIONS)}){hint}"
        )
    return src


class MissingSplit(BadInput):
    """The data has split folders, but not the one asked for."""


def pick_split(where: object, split: str | None, available: set[str]) -> str | None:
    """The folder name serving `split` among `available` top-level folders (val and test stand
    in for each other); None when there are no split folders at all."""
    present = available & ALL_SPLITS
    if split is None or not present:
        return None
    for name in SPLIT_NAMES.get(split, (split,)):
        if name in present:
            return name
    raise MissingSplit(f"{where}: has no '{split}' split (found {', '.join(sorted(present))})")


# ---- tar shards -----------------------------------------------------------------------------
def _safe_member(shard: Path, name: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise BadInput(f"{shard}: member {name!r} has an absolute path or '..'; refusing this shard")


@functools.lru_cache(maxsize=64)
def _index_shard(shard: str, mtime_ns: int, size: int):
    """(image member names, data offsets, sizes, labels from .cls members or -1, has .cls) of
    one shard; cached per file version, so the train and test splits of one tar index it once."""
    names, offsets, sizes, cls_values = [], [], [], {}
    try:
        with tarfile.open(shard, "r:") as tf:
            for m in tf:
                _safe_member(Path(shard), m.name)
                if not m.isfile():
                    continue
                if m.offset_data + m.size > size:  # a header's size is a claim: never read past the file
                    raise BadInput(
                        f"{shard}: member {m.name} claims {m.size:,} bytes, past the end of the "
                        f"{size:,}-byte file (truncated or damaged shard)"
                    )
                if m.name.endswith(".cls"):
                    text = tf.extractfile(m).read(32).strip() if m.size <= 32 else b"(too long)"
                    if not (text.isdigit() or text == b"-1") or len(text) > 7 or int(text) >= MAX_CLASSES:
                        raise BadInput(
                            f"{shard}: {m.name} should hold a class number 0..{MAX_CLASSES - 1} "
                            f"(or -1 for none), got {text[:20]!r}"
                        )
                    cls_values[m.name[:-4]] = int(text)
                elif is_image(m.name):
                    names.append(m.name)
                    offsets.append(m.offset_data)
                    sizes.append(m.size)
    except tarfile.TarError as e:
        raise BadInput(f"{shard}: not a readable uncompressed tar ({e})") from None
    labels = np.array([cls_values.get(n.rsplit(".", 1)[0], -1) for n in names], np.int64)
    return names, np.array(offsets, np.int64), np.array(sizes, np.int64), labels, bool(cls_values)


def _classes_txt(path: Path) -> list[str]:
    classes = [c for c in read_text(path, str(path)).split("\n") if c]
    if len(classes) > MAX_CLASSES or len(set(classes)) != len(classes):
        raise BadInput(f"{path}: expected up to {MAX_CLASSES:,} distinct class names, one a line")
    return classes


def tar_source(shards: list[Path], split: str | None) -> TarSource:
    """Class-folder layout (optionally under one top folder and train/ val/ test/ splits) or
    WebDataset layout (<key>.jpg + <key>.cls members)."""
    per = []
    for shard in shards:
        st = shard.stat()
        per.append(_index_shard(str(shard), st.st_mtime_ns, st.st_size))
    names = [n for p in per for n in p[0]]
    if not names:
        raise BadInput(f"{', '.join(map(str, shards[:3]))}: no image members found")
    shard_of = np.repeat(np.arange(len(shards), dtype=np.int32), [len(p[0]) for p in per])
    offset, size = np.concatenate([p[1] for p in per]), np.concatenate([p[2] for p in per])
    chosen, numbered, train_classes = None, False, None
    if any(p[4] for p in per):  # WebDataset: class numbers from .cls, names from classes.txt if present
        labels = np.concatenate([p[3] for p in per])
        names_file = shards[0].parent / "classes.txt"
        if names_file.exists():
            classes = _classes_txt(names_file)
            bad = np.flatnonzero(labels >= len(classes))
            if len(bad):
                raise BadInput(
                    f"{shards[0]}: {names[bad[0]]} has class {labels[bad[0]]}, but "
                    f"{names_file} lists {len(classes)} classes"
                )
        else:
            classes, numbered = numbered_classes(labels), True
        keep = None
    else:
        parts = [PurePosixPath(n).parts for n in names]
        if (
            all(len(p) > 2 for p in parts)
            and len({p[0] for p in parts}) == 1
            and parts[0][0] not in ALL_SPLITS
        ):
            parts = [p[1:] for p in parts]  # look through one wrapping folder (cifar10/train/...)
        available = {p[0] for p in parts if len(p) > 2}
        chosen = pick_split(shards[0], split, available)
        if chosen is not None:
            if chosen != "train" and "train" in available:
                train_classes = sorted({p[1] for p in parts if len(p) > 2 and p[0] == "train"}) or None
            keep = [i for i, p in enumerate(parts) if len(p) > 2 and p[0] == chosen]
            parts = [parts[i][1:] for i in keep]
        else:
            keep = None
        if any(len(p) < 2 for p in parts):
            raise BadInput(f"{shards[0]}: images must sit in <class>/ folders (or come with .cls members)")
        classes = sorted({p[0] for p in parts})
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[p[0]] for p in parts], np.int64)
        del parts
    if keep is not None:
        keep = np.array(keep, np.int64)
        names = [names[i] for i in keep]
        shard_of, offset, size = shard_of[keep], offset[keep], size[keep]
    counts = np.bincount(shard_of, minlength=len(shards))
    starts = np.concatenate([[0], np.cumsum(counts)])
    groups = [range(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]
    buf, offsets = pack(names)
    return TarSource(
        Names(buf, offsets),
        labels,
        classes,
        groups=groups,
        split=chosen,
        numbered=numbered,
        train_classes=train_classes,
        shards=list(shards),
        shard=shard_of,
        offset=offset,
        size=size,
    )
