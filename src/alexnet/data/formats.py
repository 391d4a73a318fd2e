"""The official distribution formats of CIFAR-10 (python pickles) and Fashion-MNIST (IDX), and
fetching them by name into a cache folder with checksum verification."""

from __future__ import annotations

import gzip
import math
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ..download import fetch_file, file_digests
from ..errors import BadInput
from ..safe_pickle import safe_loads
from ..untrusted import MAX_RATIO, SMALL, read_capped, regular
from .sources import ArraySource

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_FILES = {  # file: md5
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
MAX_CIFAR_MEMBER = 64 << 20  # bytes; a batch of 10,000 images is 30.7 MB
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def data_home() -> Path:
    return Path(os.environ.get("ALEXNET_DATA") or Path.home() / ".cache" / "alexnet")


def md5(path: Path) -> str:
    return file_digests(path, ["md5"])["md5"]


def fetch(url: str, dest: Path, checksum: str, download: bool = True) -> Path:
    """dest if present and intact (md5), else download it: the downloader pretrained weights use."""
    return fetch_file([url], dest, {"md5": checksum}, download=download)


# ---- CIFAR-10 python version ----------------------------------------------------------------
def _cifar_members(path: Path) -> dict[str, bytes]:
    """name -> bytes of the batch files, from the .tar.gz or the extracted folder."""
    wanted = {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"}
    out = {}
    if path.is_dir():
        for p in [path, path / "cifar-10-batches-py"]:
            for name in wanted:
                if (p / name).is_file():
                    out[name] = (p / name).read_bytes()
    else:
        # sizes in tar headers are claims: a batch is 30.7 MB, and the archive (gzip) cannot
        # plausibly expand more than MAX_RATIO times (the real one: 163 MB -> 178 MB)
        budget = max(MAX_RATIO * path.stat().st_size, SMALL)
        try:
            with tarfile.open(path, "r:*") as tf:
                for m in tf:
                    base = m.name.rsplit("/", 1)[-1]
                    if m.isfile() and base in wanted:
                        budget -= m.size
                        if m.size > MAX_CIFAR_MEMBER or budget < 0:
                            raise BadInput(
                                f"{path}: member {m.name} claims {m.size:,} bytes; a CIFAR-10 "
                                "batch is about 31 MB and this archive is "
                                f"{path.stat().st_size:,} "
                                "bytes (damaged or a bomb)"
                            )
                        out[base] = read_capped(tf.extractfile(m), m.size, f"{path} ({m.name})")
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise ValueError(f"{path}: not a readable CIFAR-10 archive ({e})") from None
    return out


def is_cifar(path: Path) -> bool:
    if path.is_dir():
        return (path / "data_batch_1").is_file() or (path / "cifar-10-batches-py" / "data_batch_1").is_file()
    return path.name.endswith((".tar.gz", ".tgz")) and "cifar" in path.name.lower() and path.is_file()


def cifar10_source(path: Path, split: str) -> ArraySource:
    members = _cifar_members(path)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if n not in members]
    if missing:
        raise ValueError(f"{path}: CIFAR-10 batch file(s) {', '.join(missing)} missing")
    images, labels, files = [], [], []
    for n in names:
        try:
            d = safe_loads(members[n])
            data = np.asarray(d[b"data"])
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                raise ValueError(f"data of shape {data.shape} and type {data.dtype}, expected N x 3072 uint8")
            images.append(data.reshape(-1, 3, 32, 32))
            if not all(type(v) is int for v in d[b"labels"]):
                raise ValueError("labels that are not integers")
            labels += list(d[b"labels"])
            files += [f.decode() if isinstance(f, bytes) else str(f) for f in d.get(b"filenames", [])]
        except Exception as e:  # a damaged or foreign pickle: say which file
            raise ValueError(f"{path}: {n} is not a CIFAR-10 batch ({type(e).__name__}: {e})") from None
    classes = [str(i) for i in range(10)]
    if "batches.meta" in members:
        try:
            meta = safe_loads(members["batches.meta"])
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[b"label_names"]]
            if not classes or len(classes) > 10_000:
                raise ValueError(f"{len(classes)} label names")
        except Exception as e:  # a damaged or foreign pickle: say which file
            raise BadInput(f"{path}: batches.meta is not CIFAR-10's ({type(e).__name__}: {e})") from None
    imgs = np.concatenate(images)
    files = files if len(files) == len(imgs) else [f"{n}[{i}]" for i in range(len(imgs))]
    if any(not -(2**63) <= v < 2**63 for v in labels):
        raise BadInput(f"{path}: a label beyond 64 bits; labels are class numbers 0..{len(classes) - 1}")
    labels = np.array(labels, np.int64)
    check_labels(labels, len(imgs), len(classes), path)
    return ArraySource(files, labels, classes, channels=3, split=split, images=imgs)


def check_labels(labels: np.ndarray, n: int, n_classes: int, where) -> None:
    if len(labels) != n:
        raise BadInput(f"{where}: {n} images but {len(labels)} labels")
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if len(bad):
        raise BadInput(
            f"{where}: image {bad[0]} has label {labels[bad[0]]}, outside the "
            f"{n_classes} classes (0..{n_classes - 1})"
        )


# ---- Fashion-MNIST / MNIST IDX ----------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array; its header's dimensions are checked before the body is read
    (gzipped: decompressed no further than the header says, and no more than MAX_RATIO times
    the file)."""
    opener = gzip.open if path.suffix == ".gz" else open
    size = regular(path, str(path))
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08 or not 1 <= head[3] <= 4:
                raise ValueError(
                    f"{path}: not an unsigned-byte IDX file of 1 to 4 dimensions (bad magic number)"
                )
            ndim = head[3]
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", raw)
            need = math.prod(dims)
            most = size if opener is open else max(MAX_RATIO * size, SMALL)
            if need > most:
                raise BadInput(
                    f"{path}: header claims {dims} ({need:,} bytes), more than this "
                    f"{size:,}-byte file can hold"
                )
            data = read_capped(f, need, str(path))
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a readable IDX file ({e})") from None
    body = np.frombuffer(data, dtype=np.uint8)
    if body.size != need:
        raise ValueError(f"{path}: header says {dims} but holds {body.size} bytes (truncated?)")
    return body.reshape(dims)


def is_idx_folder(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*-idx3-ubyte*"))


def fashion_source(folder: Path, split: str) -> ArraySource:
    prefix = "train" if split == "train" else "t10k"

    def find(kind):
        for name in (f"{prefix}-{kind}-ubyte.gz", f"{prefix}-{kind}-ubyte"):
            if (folder / name).is_file():
                return folder / name
        raise FileNotFoundError(f"{folder}: {prefix}-{kind}-ubyte.gz is missing")

    images, labels = read_idx(find("images-idx3")), read_idx(find("labels-idx1"))
    if images.ndim != 3 or labels.ndim != 1:
        raise BadInput(
            f"{folder}: expected N x H x W images and N labels, got {images.shape} and {labels.shape}"
        )
    labels = labels.astype(np.int64)
    check_labels(labels, len(images), len(FASHION_CLASSES), folder)
    names = [f"{prefix}[{i}]" for i in range(len(images))]
    return ArraySource(names, labels, FASHION_CLASSES, channels=1, split=split, images=images[:, None])


def named_source(name: str, split: str, download: bool = True) -> ArraySource:
    if name == "cifar10":
        path = fetch(CIFAR10_URL, data_home() / "cifar10" / "cifar-10-python.tar.gz", CIFAR10_MD5, download)
        return cifar10_source(path, split)
    folder = data_home() / "fashion-mnist"
    prefix = "train" if split == "train" else "t10k"
    for f, checksum in FASHION_FILES.items():
        if f.startswith(prefix):
            fetch(FASHION_URL + f, folder / f, checksum, download)
    return fashion_source(folder, split)
