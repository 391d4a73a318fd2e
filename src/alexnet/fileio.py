"""Files the package writes, written so they can be trusted.

Every file goes to a temporary name beside its destination, is fsynced, then renamed over it: a
crash, a full disk or a signal leaves the old file or the new one, never half of one, and the
temporary file is removed on every failure path.

`.pt` files (checkpoints, statistics) also carry a SHA-256 of their bytes, verified before
`torch.load` sees them, so a flipped bit is refused with one line instead of loading silently
(torch.load accepted 59 of 60 single-byte flips spread over a 0.7 MB checkpoint). The
digest lives in the zip archive's own comment field (the last bytes of the file), so the files
stay plain `torch.load`-able by anyone. Files written before the digest existed (no comment) load
with a warning; a digest that is present must match.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import warnings
from pathlib import Path

import torch

from .errors import BadInput, RunFailure
from .untrusted import torch_load

_TAG = b"alexnet-sha256:"
_COMMENT = len(_TAG) + 64  # the tag and 64 hex digits
_EOCD = b"PK\x05\x06"  # zip end-of-central-directory record (22 bytes)


def cache_dir() -> Path:
    """Where the package keeps what it makes for itself (kernels, weights, folder indexes):
    $ALEXNET_CACHE, else ~/.cache/alexnet."""
    base = (
        os.environ.get("ALEXNET_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "alexnet"
    )
    return Path(base)


def _fsync_dir(folder: Path) -> None:
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write(path: str | Path, write) -> None:
    """write(f) fills a temporary binary file that then replaces `path`. On any failure the
    temporary file is removed and `path` is untouched; a full disk becomes one RunFailure line."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)  # a stale one (or a link put there): created afresh, never followed
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(tmp, flags, 0o666), "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        reason = _no_space(e)
        if reason:
            keep = f"; the previous {path.name} is kept" if path.exists() else ""
            raise RunFailure(f"{path}: could not be written ({reason}){keep}") from None
        raise
    _fsync_dir(path.parent)


def _no_space(e: BaseException) -> str | None:
    """torch's zip writer turns the OSError of a full disk into a RuntimeError whose __context__
    it is: look along the chain."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return "no space left on device"
        e = e.__cause__ or e.__context__
    return None


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


class _Hashing:
    """Passes writes through to a file and hashes all but the last two bytes written (the zip
    comment length, rewritten once the digest is known); keeps the last 22 for a layout check."""

    def __init__(self, f):
        self.f, self.h, self.held, self.tail = f, hashlib.sha256(), b"", b""

    def write(self, b) -> int:
        b = memoryview(b).cast("B")
        if len(b) >= 2:
            self.h.update(self.held)
            self.h.update(b[:-2])
            self.held = bytes(b[-2:])
        else:
            both = self.held + bytes(b)
            self.h.update(both[:-2])
            self.held = both[-2:]
        self.tail = (self.tail + bytes(b[-22:]))[-22:]
        return self.f.write(b)

    def flush(self) -> None:
        self.f.flush()


def save_pt(obj, path: str | Path) -> None:
    """torch.save, atomically, with the SHA-256 footer; streamed, so no second copy in memory."""

    def write(f):
        hashing = _Hashing(f)
        torch.save(obj, hashing)
        if hashing.tail[:4] != _EOCD or hashing.held != b"\0\0":
            raise RuntimeError("torch.save wrote an unexpected zip layout; cannot add a digest")
        f.seek(-2, os.SEEK_END)
        f.write(struct.pack("<H", _COMMENT) + _TAG + hashing.h.hexdigest().encode())

    atomic_write(path, write)


def check_digest(path: Path, what: str, optional: bool = False) -> None:
    """Verify the digest; without one, warn (or, `optional`, for files from elsewhere, accept)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - _COMMENT - 22))
        tail = f.read()
        if (
            size >= _COMMENT + 22
            and tail[-_COMMENT - 22 : -_COMMENT - 18] == _EOCD
            and tail[-_COMMENT - 2 : -_COMMENT] == struct.pack("<H", _COMMENT)
            and tail[-_COMMENT:-64] == _TAG
        ):
            h, left = hashlib.sha256(), size - _COMMENT - 2
            f.seek(0)
            while left > 0:
                chunk = f.read(min(left, 1 << 23))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            if h.hexdigest().encode() != tail[-64:]:
                raise BadInput(
                    f"{path}: damaged {what} (its SHA-256 does not match the digest "
                    "stored in it); use another copy"
                )
            return
    if optional:
        return
    if len(tail) >= 22 and tail[-22:-18] == _EOCD and tail[-2:] == b"\0\0":
        warnings.warn(
            f"{path}: no integrity digest (written by an older version); loading it unverified", stacklevel=3
        )
        return
    raise BadInput(f"{path}: damaged or not a {what} (its integrity footer is missing or broken)")


def load_pt(path: str | Path, what: str = "checkpoint"):
    """torch.load(weights_only=True) of a file whose digest has been verified first."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {what} here")
    check_digest(path, what)
    return torch_load(path, what)  # the digest is no signature: sizes are still checked


def missing_folders(path: str | Path) -> list[Path]:
    """The folders that making `path` (parents included) would create, deepest first; handed to
    remove_empty() when a start-up fails, so a failed command leaves no empty folder behind."""
    path, made = Path(path), []
    while not path.exists() and path != path.parent:
        made.append(path)
        path = path.parent
    return made


def remove_empty(folders: list[Path]) -> None:
    """Remove these folders (deepest first) where they exist and are empty; stop at the first
    that holds anything: what is in it is not ours to remove."""
    for f in folders:
        try:
            f.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # not empty (or not ours to remove): keep it and what is above it
            return
