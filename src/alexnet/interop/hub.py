"""Pretrained weights by name: one table of where each file comes from, how it is checked, what
it is licensed under and how well it classifies, and `resolve(name)` that downloads it once into
`$ALEXNET_CACHE/weights` (verified before use) and returns its path.

`ALEXNET_WEIGHTS_MIRROR=<base URL>` fetches `<base>/<file>` instead of the upstream hosts (an
air-gapped cluster's web server, a `file://` folder, or a test's loopback server).

Every checksum below is a published one, quoted from where it was published; the one file
without a published checksum (Guerzhoy's bvlc_alexnet.npy) is checked by its structure, and the
SHA-256 of the first copy downloaded is pinned in `<file>.sha256` beside it (write that file
yourself beforehand to pin a hash you trust).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..download import MAX_UNKNOWN, fetch_file, file_digests
from ..errors import BadInput
from ..fileio import atomic_write_text, cache_dir
from ..models import create_model
from ..untrusted import text as read_text
from .caffe import caffe_state_dict, npy_to_caffe_layout, read_npy_dict


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    file: str
    urls: tuple[str, ...]  # upstream first, then mirrors (tried in order)
    checksums: dict  # algorithm -> hex digest, each quoted from its source
    size: int | None  # bytes; None where unpublished
    licence: str
    model: str  # what load_pretrained must build from the file
    accuracy: dict  # top-1 / top-5 (%) and what they were measured on
    source: str  # where the numbers above were published
    notes: str = ""
    extra: dict = field(default_factory=dict)
    max_size: int | None = None  # bytes a download may reach where `size` is unpublished


_TV_ACC = "ImageNet-1k val (50,000 images), resize 256, centre crop 224, one crop"
_CAFFE_ACC = "ILSVRC-2012 val (50,000 images), centre crop 227 of 256x256, one crop"

WEIGHTS: dict[str, WeightsEntry] = {
    e.name: e
    for e in [
        WeightsEntry(
            "torchvision",
            "alexnet-owt-7be5be79.pth",
            ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
            # torchvision names its files with the first 8 hex digits of their SHA-256; the whole
            # digest and size are as recorded by independent projects that pin this file
            {"sha256": "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"},
            244_408_911,
            "BSD-3-Clause",
            "alexnet_owt",
            {"top1": 56.522, "top5": 79.066, "on": _TV_ACC},
            "torchvision AlexNet_Weights.IMAGENET1K_V1 (docs: acc@1 56.522, acc@5 79.066)",
        ),
        WeightsEntry(
            "bvlc_alexnet",
            "bvlc_alexnet.caffemodel",
            (
                "http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel",
                "https://nvidia.box.com/shared/static/5j264j7mky11q8emy4q14w3r8hl5v6zh.caffemodel",
            ),
            {
                "sha1": "9116a64c0fbe4459d18f4bb6b56d647b63920377",  # BVLC model zoo readme
                "sha256": "4bff209a9837298157915ef50a4831a59636a6ca1a6b8ebacd990c3a5f3053e0",
            },  # OpenVINO OMZ
            243_862_414,
            "unrestricted use (BVLC model zoo)",
            "alexnet_caffe",
            {"top1": 57.1, "top5": 80.2, "on": _CAFFE_ACC},
            "BVLC/caffe models/bvlc_alexnet/readme.md (iteration 360,000 snapshot)",
        ),
        WeightsEntry(
            "caffenet",
            "bvlc_reference_caffenet.caffemodel",
            ("http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel",),
            {
                "sha1": "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46",  # BVLC model zoo readme
                "sha384": "6677844301d6c7f68f5b6a299cf41c4f0955bab7d1fb8719375fae6d05b6173d"
                "b9deccf3ac4aaa4225bf6c6e99d81a68",
            },  # OpenVINO OMZ
            243_862_418,
            "unrestricted use (BVLC model zoo)",
            "caffenet",
            {"top1": 57.4, "top5": 80.4, "on": _CAFFE_ACC},
            "BVLC/caffe models/bvlc_reference_caffenet/readme.md (iteration 310,000 snapshot)",
        ),
        WeightsEntry(
            "bvlc_alexnet.npy",
            "bvlc_alexnet.npy",
            ("http://www.cs.toronto.edu/~guerzhoy/tf_alexnet/bvlc_alexnet.npy",),
            {},
            None,
            "unrestricted use (bvlc_alexnet, converted by M. Guerzhoy with caffe-tensorflow)",
            "alexnet_caffe",
            {"top1": 57.1, "top5": 80.2, "on": _CAFFE_ACC + "; bvlc_alexnet's numbers: the same weights"},
            "http://www.cs.toronto.edu/~guerzhoy/tf_alexnet/ (no checksum or size published)",
            notes="no published checksum: checked by structure (every AlexNet layer, every shape), "
            "then its SHA-256 is pinned on first download",
            max_size=300_000_000,
        ),  # AlexNet's 60,965,224 float32 values are 243.9 MB
    ]
}


def weights_dir() -> Path:
    return cache_dir() / "weights"


def urls(entry: WeightsEntry) -> list[str]:
    mirror = os.environ.get("ALEXNET_WEIGHTS_MIRROR")
    if mirror:  # instead of the upstream hosts, not as well: air-gapped clusters, tests
        return [f"{mirror.rstrip('/')}/{entry.file}"]
    return list(entry.urls)


def _pin_file(entry: WeightsEntry) -> Path:
    return weights_dir() / (entry.file + ".sha256")


def checksums(entry: WeightsEntry) -> dict[str, str]:
    """The published checksums plus, where there are none, the user's (or first download's) pin."""
    sums = dict(entry.checksums)
    pin = _pin_file(entry)
    if not sums and pin.is_symlink():  # a pin is the user's own statement, kept in the cache
        raise BadInput(f"{pin}: a symbolic link; a pinned SHA-256 must be a file in the cache")
    if not sums and pin.is_file():
        text = read_text(pin, str(pin), 4096).split()
        if not text or len(text[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text[0]):
            raise BadInput(f"{pin}: expected a SHA-256 (64 hex digits) for {entry.file}")
        sums["sha256"] = text[0].lower()
    return sums


def _structure_check(entry: WeightsEntry):
    """For a file without a published checksum: it must load as the model it claims to be."""

    def check(path: Path) -> None:
        blobs = npy_to_caffe_layout(read_npy_dict(path), path)
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = create_model(entry.model, num_classes=1000)
        caffe_state_dict(blobs, model, path)

    return check


def resolve(name: str, progress: bool = True, download: bool = True) -> Path:
    """The verified local copy of the named weights, downloading it first if needed."""
    if name not in WEIGHTS:
        raise BadInput(
            f"{name!r}: no such weights file, nor a name from `alexnet weights` ({', '.join(WEIGHTS)})"
        )
    entry = WEIGHTS[name]
    dest = weights_dir() / entry.file
    sums = checksums(entry)
    check = _structure_check(entry) if not sums else None
    placed = dest.is_file()  # by hand, or by an earlier run
    path = fetch_file(
        urls(entry),
        dest,
        sums,
        entry.size,
        download=download,
        progress=progress,
        validate=check,
        max_size=entry.max_size or MAX_UNKNOWN,
    )
    if check is not None:  # trust on first use, said out loud
        if placed:  # a downloaded file was checked before its move; this one was not
            check(path)
        digest = file_digests(path, ["sha256"])["sha256"]
        pin = _pin_file(entry)
        try:  # renamed into place: a link put where the pin goes is replaced, not followed
            atomic_write_text(pin, digest + "\n")
            where = f"is now pinned in {pin}"
        except OSError as e:  # a read-only shared cache: the file is used as it is
            where = f"could not be pinned in {pin} ({e.strerror or e}); it is checked again next time"
        warnings.warn(
            f"{entry.file} has no published checksum: it loads as {entry.model} with "
            f"every shape right; its sha256 {digest} {where}",
            stacklevel=2,
        )
    return path


def describe_checksum(entry: WeightsEntry) -> str:
    if entry.checksums:
        algo, digest = next(iter(entry.checksums.items()))
        return f"{algo}:{digest[:12]}"
    pin = _pin_file(entry)
    return f"pinned sha256:{checksums(entry)['sha256'][:12]}" if pin.is_file() else "none published"


def format_table() -> str:
    """What `alexnet weights` prints."""
    rows = [("name", "file", "checksum", "size", "top-1/top-5", "licence", "cached")]
    for e in WEIGHTS.values():
        dest = weights_dir() / e.file
        partial = dest.with_name(e.file + ".part").is_file()
        cached = "yes" if dest.is_file() else ("partial" if partial else "no")
        size = f"{e.size / 1e6:.1f} MB" if e.size else "~244 MB"
        rows.append(
            (
                e.name,
                e.file,
                describe_checksum(e),
                size,
                f"{e.accuracy['top1']:g}/{e.accuracy['top5']:g}",
                e.licence.split(" (")[0],
                cached,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    mirror = os.environ.get("ALEXNET_WEIGHTS_MIRROR")
    lines.append(f"cache: {weights_dir()}" + (f"   mirror: {mirror}" if mirror else ""))
    lines.append("accuracy: published single-crop ImageNet validation numbers (docs/weights.md)")
    return "\n".join(lines)
