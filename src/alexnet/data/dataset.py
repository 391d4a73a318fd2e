"""`open_dataset(spec, split)` and the loader: uint8 batches of fixed-size images, bad files
skipped (and counted), shuffled reproducibly per epoch, sharded across DDP ranks."""

from __future__ import annotations

import collections
import glob
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import BadInput, RunFailure
from .decode import DEFAULT_MAX_PIXELS, BadImage, decode, peek_size, resize_crop
from .formats import cifar10_source, fashion_source, is_cifar, is_idx_folder, named_source
from .sources import ArraySource, Source, apply_classes, folder_source, pick_split, tar_source

NAMED = ("cifar10", "fashion-mnist")


MAX_SHARDS = 100_000
PATH_MAX = 4096  # bytes: Linux's longest path


def expand_braces(spec: str, flag: str = "--data") -> list[str]:
    """train-{000..099}.tar -> train-000.tar ... train-099.tar (zero padding kept)."""
    total = 1
    for a, b in re.findall(r"\{(\d+)\.\.(\d+)\}", spec):
        total *= max(0, int(b) - int(a) + 1)
        if total > MAX_SHARDS:
            raise BadInput(f"{flag} {spec[:200]}: expands to more than {MAX_SHARDS:,} shards")
    m = re.search(r"\{(\d+)\.\.(\d+)\}", spec)
    if not m:
        return [spec]
    a, b = m.group(1), m.group(2)
    width = len(a) if a.startswith("0") else 0
    out = []
    for i in range(int(a), int(b) + 1):
        out += expand_braces(spec[: m.start()] + str(i).zfill(width) + spec[m.end() :])
    return out


def open_source(
    spec: str | os.PathLike,
    split: str | None = "train",
    labels_file: str | os.PathLike | None = None,
    download: bool = True,
    classes: list[str] | None = None,
    classes_from: str = "the class list given",
    follow_symlinks: bool | None = None,
    flag: str = "--data",
) -> Source:
    """A name (cifar10, fashion-mnist), a folder, a tar file, or shards (a glob or {a..b}).

    `classes`: the reference class list (a network's, the training split's); labels become
    positions in it, matched by name. Without it a split other than train still takes the
    training split's list where the data has one, so that every split numbers classes alike.
    `follow_symlinks`: follow symlinks that leave the data folder (default: skip and count
    them; ALEXNET_FOLLOW_SYMLINKS=1 turns it on)."""
    spec = os.fspath(spec)
    labels_file = None if labels_file is None else os.fspath(labels_file)
    src = _open(spec, split, labels_file, download, follow_symlinks, classes is None, flag)
    where = f"{flag} {spec}" + (f" ({src.split} split)" if src.split else "")
    if classes is None and src.train_classes is not None:
        classes, classes_from = src.train_classes, f"the training split of {spec}"
    return apply_classes(src, classes, where, classes_from)


def _open(
    spec: str,
    split: str | None,
    labels_file: str | None,
    download: bool,
    follow_symlinks: bool | None,
    train_default: bool,
    flag: str = "--data",
) -> Source:
    if spec in NAMED:
        return named_source(spec, split or "train", download)
    if not str(spec).strip():
        raise BadInput(
            f"{flag} {spec!r}: empty; give a folder, a .tar, shards like train-{{000..009}}.tar, "
            f"or one of {', '.join(NAMED)}"
        )
    if len(spec) > PATH_MAX:  # no such path can exist, and globbing it takes time quadratic in its length
        raise BadInput(
            f"{flag} {spec[:60]}...: {len(spec):,} characters, longer than any path ({PATH_MAX:,})"
        )
    files = [
        p
        for s in expand_braces(spec, flag)
        for p in (sorted(glob.glob(s)) if any(c in s for c in "*?[") else [s])
    ]
    paths = [Path(p) for p in files]
    missing = [p for p in paths if not p.exists()]
    if missing or not paths:
        raise FileNotFoundError(
            f"{flag} {spec}: "
            f"{f'{missing[0]} does not exist' if missing else 'no file matches'} "
            f"(give a folder, a .tar, shards like train-{{000..009}}.tar, "
            f"or one of {', '.join(NAMED)})"
        )
    if len(paths) == 1 and is_cifar(paths[0]):
        return cifar10_source(paths[0], "train" if split in (None, "train") else "test")
    if len(paths) == 1 and is_idx_folder(paths[0]):
        return fashion_source(paths[0], "train" if split in (None, "train") else "test")
    if len(paths) == 1 and paths[0].is_dir():
        shards = sorted(paths[0].glob("*.tar"))
        if shards and not any(d.is_dir() for d in paths[0].iterdir()):
            return _prepared_shards(paths[0], shards, split)
        return folder_source(
            paths[0], split, Path(labels_file) if labels_file else None, follow_symlinks, train_default
        )
    if all(p.is_file() and p.name.endswith(".tar") for p in paths):
        return tar_source(paths, split)
    raise BadInput(f"{flag} {spec}: not a folder, .tar shard(s), CIFAR-10 python archive or IDX folder")


def _prepared_shards(folder: Path, shards: list[Path], split: str | None) -> Source:
    """A folder of `alexnet prepare` output: <split>-NNNNNN.tar shards."""
    by_split = {}
    for p in shards:
        by_split.setdefault(p.name.split("-", 1)[0], []).append(p)
    name = pick_split(folder, split, set(by_split))
    src = tar_source(by_split[name] if name else shards, split)
    src.split = name
    return src


@dataclass(frozen=True)  # shared, as the default below: never changed in place
class Decoding:
    """How workers turn a stored image into a fixed-size uint8 tensor (paper §2)."""

    resize: int | None = 256  # shorter side; None keeps the native size (CIFAR at 32)
    crop: int | None = 256  # centre crop stored for batching; None keeps the native size
    max_pixels: int = DEFAULT_MAX_PIXELS


STORED_256 = Decoding()  # the paper's stored images (§2): 256 short side, centre crop


class ImageDataset(Dataset):
    def __init__(self, source: Source, decoding: Decoding = STORED_256):
        self.source, self.decoding = source, decoding
        self._native: tuple[int, int] | None = None

    def native_size(self) -> tuple[int, int] | None:
        """The most common (W, H) among 16 images spread over the dataset (headers only): at
        native size (no resize, no crop) every image is brought to it, so that one odd file
        cannot break a batch, nor set the size for all the others."""
        if self._native is None and isinstance(self.source, ArraySource):  # decoded already: (N, C, H, W)
            self._native = tuple(self.source.images.shape[:-3:-1])
        if self._native is None:
            sizes = collections.Counter()
            sample = np.linspace(0, len(self.source) - 1, min(len(self.source), 16)).astype(int)
            for j in dict.fromkeys(sample):
                try:
                    sizes[peek_size(self.source.read(int(j)), self.source.names[int(j)])] += 1
                except (BadImage, OSError):
                    continue
            self._native = sizes.most_common(1)[0][0] if sizes else None
        return self._native

    def __len__(self) -> int:
        return len(self.source)

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    def __getitem__(self, i: int):
        """(uint8 tensor, label, index), or (None, label, name) for an unusable file."""
        d, src = self.decoding, self.source
        name = src.names[i]
        try:
            raw = src.read(i)
            if isinstance(src, ArraySource):
                arr = raw.transpose(1, 2, 0)
                img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
                if d.resize is None and d.crop is None:
                    return torch.from_numpy(np.ascontiguousarray(raw)), int(src.labels[i]), i
                x = resize_crop(img, name, d.resize, d.crop, rgb=src.channels == 3)
            else:
                native = self.native_size() if d.resize is None and d.crop is None else None
                x = decode(raw, name, d.resize, d.crop, d.max_pixels, rgb=src.channels == 3, fit=native)
            return x, int(src.labels[i]), i
        except (BadImage, OSError) as e:
            warnings.warn(f"skipping {e}", stacklevel=2)
            return None, int(src.labels[i]), name
        except BadInput:
            raise
        except Exception as e:  # a defect, not a bad file: fail, naming the file it met
            raise RunFailure(f"{name}: {type(e).__name__}: {e}") from e


class Batch(NamedTuple):
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    indices: torch.Tensor  # (N,) dataset indices
    skipped: list[str]  # names of files that could not be read

    def pin_memory(self):
        return Batch(self.images.pin_memory(), self.labels.pin_memory(), self.indices, self.skipped)


def stack_images(images: list[torch.Tensor], shared: bool | None = None) -> torch.Tensor:
    """(N, C, H, W) uint8, laid out channels_last (N, H, W, C in memory): decoded images are H, W, C
    (Pillow's order, seen as C, H, W), so each is one straight copy, where an NCHW batch would
    transpose every pixel; and the model runs channels_last. In a loader worker (or `shared`) the
    batch is made in shared memory, which the queue to the main process then passes as it is
    instead of copying it there (torch's default collate does the same): one host copy fewer."""
    n, (c, h, w) = len(images), images[0].shape
    if torch.utils.data.get_worker_info() is not None if shared is None else shared:
        storage = torch.UntypedStorage._new_shared(n * h * w * c * images[0].element_size())
        out = torch.empty(0, dtype=images[0].dtype).set_(storage, 0, (n, c, h, w), (h * w * c, 1, w * c, c))
    else:
        out = torch.empty((n, c, h, w), dtype=images[0].dtype, memory_format=torch.channels_last)
    return torch.stack(images, out=out)


def collate(items) -> Batch:
    good = [it for it in items if it[0] is not None]
    skipped = [it[2] for it in items if it[0] is None]
    if not good:
        return Batch(
            torch.empty(0, dtype=torch.uint8),
            torch.empty(0, dtype=torch.long),
            torch.empty(0, dtype=torch.long),
            skipped,
        )
    shapes = {tuple(it[0].shape) for it in good}
    if len(shapes) > 1:
        raise BadInput(
            f"images of different sizes in one batch ({', '.join(map(str, sorted(shapes)[:3]))}): "
            f"give a crop size, or use batch size 1"
        )
    return Batch(
        stack_images([it[0] for it in good]),
        torch.tensor([it[1] for it in good]),
        torch.tensor([it[2] for it in good]),
        skipped,
    )


class EpochSampler(Sampler[int]):
    """A reproducible order per (seed, epoch); each DDP rank takes every world-th index. With
    `groups` (tar shards) the shuffle permutes shards, then indices within each shard, so reads
    stay sequential. `set_epoch(e, skip)` starts after `skip` already-consumed samples (resume)."""

    def __init__(
        self,
        n: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        groups: list[range] | None = None,
    ):
        self.n, self.shuffle, self.seed, self.rank, self.world = n, shuffle, seed, rank, world
        self.groups = groups if groups and len(groups) > 1 else None
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def order(self) -> list[int]:
        if not self.shuffle:
            idx = list(range(self.n))
        else:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            if self.groups:
                idx = []
                for gi in torch.randperm(len(self.groups), generator=g).tolist():
                    r = self.groups[gi]
                    idx += [r.start + j for j in torch.randperm(len(r), generator=g).tolist()]
            else:
                idx = torch.randperm(self.n, generator=g).tolist()
        per_rank = -(-self.n // self.world)
        idx += idx[: per_rank * self.world - len(idx)]  # pad so every rank gets as many
        return idx[self.rank :: self.world]

    def __iter__(self):
        return iter(self.order()[self.skip :])

    def __len__(self) -> int:
        return -(-self.n // self.world) - self.skip


# What the process that trains needs for itself beside its loader workers: its own Python thread
# (launches, the batched augmentation) and, on CUDA, the pin-memory thread.
MAIN_CORES = 2
# `--workers auto` on CPU: one per core, at most this many. A worker whose prefetch queue is full
# sleeps, so the training step loses little to it, and the passes that wait for the loader (the
# statistics, validation, small nets) get every core: on 2 cores AlexNet trained 1.5-1.9x faster
# with 2 workers than with 1 (docs/benchmarks.md, "Data loading"). Four decode 2,000 img/s from
# originals, far more than a CPU trains AlexNet at.
CPU_MAX_WORKERS = 4


def cores() -> int:
    """The cores this process may run on (its affinity mask, which containers and torchrun set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str, device: str | torch.device = "cpu", processes: int = 1) -> int:
    """`--workers auto` as a number: on CUDA every core left after the trainer's own (MAIN_CORES),
    on CPU one per core up to CPU_MAX_WORKERS, either shared by the `processes` that run on this
    machine (torchrun: one per GPU). A number is kept as it is."""
    if workers != "auto":
        return int(workers)
    mine = cores() // max(1, processes)
    if torch.device(device).type == "cuda":
        return max(1, mine - MAIN_CORES)
    return max(1, min(mine, CPU_MAX_WORKERS))


def make_loader(
    dataset: ImageDataset,
    batch_size: int,
    *,
    shuffle: bool,
    workers: int = 2,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    pin_memory: bool = False,
    drop_last: bool = False,
) -> DataLoader:
    sampler = EpochSampler(len(dataset), shuffle, seed, rank, world, dataset.source.groups)
    # its own generator: creating an iterator must not draw from torch's global RNG, or a
    # resumed run would see different dropout masks than an uninterrupted one
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
    )


def shutdown(loader: DataLoader) -> None:
    """Stop a loader's worker processes and pin-memory thread now, not when it is collected: a
    CUDA graph captured while a pin-memory thread lives can fail, and idle workers hold memory."""
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):  # a multi-process iterator
        it._shutdown_workers()
    loader._iterator = None


def open_dataset(
    spec: str | os.PathLike,
    split: str | None = "train",
    decoding: Decoding = STORED_256,
    labels_file: str | os.PathLike | None = None,
    download: bool = True,
    classes: list[str] | None = None,
    classes_from: str = "the class list given",
    follow_symlinks: bool | None = None,
    flag: str = "--data",
) -> ImageDataset:
    """open_source (see there for `classes` and `follow_symlinks`) with its decoding; `flag` is
    what messages call the spec (--data, --val-data)."""
    return ImageDataset(
        open_source(spec, split, labels_file, download, classes, classes_from, follow_symlinks, flag),
        decoding,
    )
