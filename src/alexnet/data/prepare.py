"""`alexnet prepare SRC DST`: re-encode a dataset at 256 on the shorter side into tar shards of
WebDataset-style members (<key>.jpg + <key>.cls), so that a large dataset streams sequentially
and decodes at a quarter of the cost of full-size photos. Shards are written to a temporary
name and renamed when complete, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

from PIL import Image
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..errors import BadInput
from ..fileio import missing_folders, remove_empty
from .dataset import Decoding, ImageDataset, collate, open_source


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tf.addfile(info, io.BytesIO(data))


def _write_classes(path: Path, classes: list[str]) -> None:
    """classes.txt, once: shards already written number their classes by an existing list."""
    text = "\n".join(classes) + "\n"
    if path.exists() and path.read_text() != text:
        raise BadInput(
            f"{path}: lists other classes than the source has now; the shards beside it "
            f"would be mislabelled: prepare into a new folder"
        )
    if not path.exists():
        path.write_text(text)


def prepare(
    src: str,
    dst: str | Path,
    *,
    resize: int = 256,
    shard_size: int = 1000,
    quality: int = 95,
    splits=("train", "val"),
    labels_file: str | None = None,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, int]:
    """Returns {split: images written}; bad source files are skipped with a warning. The first
    split's classes are the list every split's .cls numbers refer to (one classes.txt)."""
    for flag, value, low, high in (
        ("--shard-size", shard_size, 1, 10**7),
        ("--resize", resize, 1, 65535),
        ("--quality", quality, 1, 100),
    ):
        if not isinstance(value, int) or not low <= value <= high:
            raise BadInput(f"{flag} {value}: expected an integer {low}..{high}")
    dst = Path(dst)
    made = missing_folders(dst)
    dst.mkdir(parents=True, exist_ok=True)
    try:
        return _prepare(src, dst, resize, shard_size, quality, splits, labels_file, workers, progress)
    except BaseException:
        remove_empty(made)  # a failed start (no such SRC) leaves no empty DST behind
        raise


def _prepare(src, dst: Path, resize, shard_size, quality, splits, labels_file, workers, progress):
    written: dict[str, int] = {}
    classes = None
    for split in splits:
        source = open_source(
            src,
            split,
            labels_file,
            classes=classes,
            classes_from=f"the {splits[0]} split of {src}",
            flag="src",
        )
        if source.split is None and split != splits[0]:
            continue  # the data has no separate splits: everything went into the first
        name = "train" if split == "train" else "val"
        if classes is None and source.classes:
            classes = source.classes
            _write_classes(dst / "classes.txt", classes)
        dataset = ImageDataset(source, Decoding(resize=resize, crop=None))
        n_shards = -(-len(dataset) // shard_size)
        count = 0
        for s in tqdm(range(n_shards), desc=f"prepare {name}", unit="shard", disable=not progress):
            out = dst / f"{name}-{s:06d}.tar"
            idx = range(s * shard_size, min(len(dataset), (s + 1) * shard_size))
            if out.exists():  # finished by an earlier run
                count += len(idx)
                continue
            tmp = out.with_suffix(".tar.tmp")
            # batch_size=1: images keep their own aspect ratio, so they cannot be stacked
            loader = DataLoader(Subset(dataset, idx), batch_size=1, num_workers=workers, collate_fn=collate)
            with tarfile.open(tmp, "w") as tf:
                for batch in loader:
                    for img, label, i in zip(batch.images, batch.labels, batch.indices):
                        buf = io.BytesIO()
                        pixels = img.permute(1, 2, 0).squeeze(-1).numpy()
                        Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
                        _add(tf, f"{int(i):09d}.jpg", buf.getvalue())
                        _add(tf, f"{int(i):09d}.cls", str(int(label)).encode())
                        count += 1
            tmp.replace(out)
        written[name] = count
    return written
