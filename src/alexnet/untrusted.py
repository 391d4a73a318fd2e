"""Reading files from strangers: sizes they declare are checked against their length and sane
limits before anything is allocated (issue 11 §1).

A few hundred bytes can claim gigabytes: an .npy header's shape, a zip member's uncompressed
size, a gzip stream of zeros, a tar header's member size, a torch file's storage sizes. Each
reader below compares the claim with the bytes actually present (or, for compressed data, with
what the compressed bytes can plausibly expand to) and refuses with one line naming the file.

Compression ratios: deflate cannot exceed about 1032:1, and the files read here (weights,
features, images, labels) compress to between 1:1 and 10:1. A member that would expand more than
MAX_RATIO times its stored size (and to more than SMALL bytes) is refused as a bomb.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from .errors import BadInput

MAX_RATIO = 100
SMALL = 1 << 20  # anything may expand to a megabyte


def _where(path, where: str | None) -> str:
    return where or str(path)


# ---- zip archives (.npz, .keras, torch files) -----------------------------------------------------
def check_zip(
    z: zipfile.ZipFile,
    where: str,
    file_size: int,
    limits: dict[str, int] | None = None,
    ratio: int = MAX_RATIO,
) -> None:
    """Every member stored or deflated, its declared size plausible for its stored size, within
    `limits` (member name -> bytes), and all of them inside the file."""
    stored = 0
    for info in z.infolist():
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BadInput(
                f"{where}: member {info.filename!r} uses compression method "
                f"{info.compress_type}; expected stored or deflated"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise BadInput(
                f"{where}: member {info.filename!r} declares {info.file_size:,} bytes but "
                f"stores {info.compress_size:,} (damaged archive)"
            )
        if info.file_size > max(ratio * info.compress_size, SMALL):
            raise BadInput(
                f"{where}: member {info.filename!r} would expand from {info.compress_size:,} "
                f"to {info.file_size:,} bytes (a zip bomb?); refusing it"
            )
        limit = (limits or {}).get(info.filename)
        if limit is not None and info.file_size > limit:
            raise BadInput(
                f"{where}: member {info.filename!r} is {info.file_size:,} bytes, implausibly "
                f"large (limit {limit:,})"
            )
        stored += info.compress_size
    if stored > file_size:
        raise BadInput(
            f"{where}: its members claim {stored:,} bytes, more than the file's {file_size:,} "
            "(damaged archive)"
        )


def open_zip(
    path: str | Path,
    where: str | None = None,
    limits: dict[str, int] | None = None,
    what: str = "zip archive",
) -> zipfile.ZipFile:
    """A checked ZipFile (the caller closes it)."""
    where = _where(path, where)
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as e:
        raise BadInput(f"{where}: not a readable {what} ({e})") from None
    try:
        check_zip(z, where, Path(path).stat().st_size, limits)
    except BaseException:
        z.close()
        raise
    return z


def read_member(
    z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, limit: int | None = None, ratio: int = MAX_RATIO
) -> bytearray:
    """A member's bytes, decompressed here from the stored stream, checking what it really does:
    the ratio of bytes produced to compressed bytes actually consumed (a deflate stream padded
    with junk after its end passes a ratio check on the declared sizes and still expands 1000:1),
    at most `limit` (and the declared size) produced, and the CRC at the end."""
    name = f"member {info.filename!r}"
    cap = info.file_size if limit is None else min(limit, info.file_size)
    if info.file_size > cap:
        raise BadInput(f"{where}: {name} is {info.file_size:,} bytes, implausibly large (limit {cap:,})")
    f = z.fp
    f.seek(info.header_offset)
    head = f.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise BadInput(f"{where}: {name} is damaged (no local header)")
    name_len, extra_len = int.from_bytes(head[26:28], "little"), int.from_bytes(head[28:30], "little")
    f.seek(info.header_offset + 30 + name_len + extra_len)
    left, out, used = info.compress_size, bytearray(), 0
    inflate = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    produced = 0
    while left > 0 and not (inflate and inflate.eof):
        chunk = f.read(min(left, 1 << 16))
        if not chunk:
            break
        left -= len(chunk)
        try:
            data = inflate.decompress(chunk, cap + 1 - produced) if inflate else chunk
        except zlib.error as e:
            raise BadInput(f"{where}: {name} is damaged ({e})") from None
        if inflate and inflate.unconsumed_tail:
            raise BadInput(f"{where}: {name} expands beyond the {cap:,} bytes it declares")
        used += len(chunk) - (len(inflate.unused_data) if inflate else 0)
        produced += len(data)
        out += data
        if produced > cap or produced > max(ratio * used, SMALL):
            raise BadInput(
                f"{where}: {name} expands to more than {produced:,} bytes from {used:,} "
                "compressed ones (a zip bomb?); refusing it"
            )
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        raise BadInput(f"{where}: {name} is damaged (its size or CRC does not match)")
    return out


# ---- .npy / .npz --------------------------------------------------------------------------------
def npy_header(f, where: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    """(shape, dtype, fortran order) from an open .npy stream, left at the start of the data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown .npy version {version}")
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy's header parser fails in many ways (TokenError, ...)
        raise BadInput(f"{where}: damaged .npy header ({' '.join(str(e).split())[:160]})") from None
    return shape, dtype, fortran


def check_npy(shape, dtype: np.dtype, available: int, where: str) -> None:
    """A plain array's header against the bytes that follow it."""
    if dtype.hasobject:
        raise BadInput(f"{where}: not a plain .npy array (it holds Python objects: a pickle)")
    need = math.prod(shape) * dtype.itemsize
    if need != available:
        raise BadInput(
            f"{where}: its header claims shape {tuple(shape)} of {dtype} ({need:,} bytes) but "
            f"{available:,} bytes follow (truncated or damaged)"
        )


def load_npy(path: str | Path, where: str | None = None) -> np.ndarray:
    """A plain .npy array, its header checked against the file's length first."""
    where = _where(path, where)
    path = Path(path)
    with open(path, "rb") as f:
        shape, dtype, _ = npy_header(f, where)
        check_npy(shape, dtype, path.stat().st_size - f.tell(), where)
    return np.load(path, allow_pickle=False)


def load_npz(path: str | Path, where: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz, each member's header checked against its declared size, and each
    declared size against the bytes that store it, before any is read."""
    where = _where(path, where)
    with open_zip(path, where) as z:
        out = {}
        for info in z.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:  # the header against the declared size before a byte of the data is inflated
                with z.open(info) as f:
                    shape, dtype, fortran = npy_header(f, f"{where} ({name})")
                    check_npy(shape, dtype, info.file_size - f.tell(), f"{where} ({name})")
                    start = f.tell()
            except (zipfile.BadZipFile, EOFError, zlib.error) as e:  # a stream that fails
                raise BadInput(f"{where}: member {info.filename!r} is damaged ({e})") from None
            data = memoryview(read_member(z, info, where))[start:]
            arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape))
            out[name] = arr.reshape(shape, order="F" if fortran else "C").copy()
    return out


# ---- capped reads -------------------------------------------------------------------------------------
def read_capped(f, limit: int, where: str) -> bytes:
    """At most `limit` bytes from a stream; more is refused (a stream that lied about its size)."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise BadInput(f"{where}: holds more than the {limit:,} bytes it declares or may hold")
    return data


def gunzip(path: str | Path, limit: int, where: str | None = None) -> bytes:
    """A gzip file's content, refusing more than `limit` bytes or a ratio beyond MAX_RATIO."""
    where = _where(path, where)
    size = Path(path).stat().st_size
    limit = min(limit, max(MAX_RATIO * size, SMALL))
    try:
        with gzip.open(path, "rb") as f:
            return read_capped(f, limit, where)
    except (OSError, EOFError, zipfile.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise BadInput(f"{where}: not a readable gzip file ({e})") from None


# ---- torch files -----------------------------------------------------------------------------------
_ELEMENT = {
    "Double": 8,
    "Float": 4,
    "Half": 2,
    "BFloat16": 2,
    "Long": 8,
    "Int": 4,
    "Short": 2,
    "Char": 1,
    "Byte": 1,
    "Bool": 1,
    "ComplexFloat": 8,
    "ComplexDouble": 16,
    "Untyped": 1,
}


class _Anything:
    """Stands for every global while a legacy torch pickle is scanned for its storage claims:
    nothing named in the file is imported or called."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def _legacy_claims(f) -> int:
    """Bytes the storages of a pre-1.6 (non-zip) torch file claim: torch allocates them before
    reading a byte of their data."""
    claims: dict[str, int] = {}

    class Scan(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch" and name.endswith("Storage"):
                return type(name, (_Anything,), {"element": _ELEMENT.get(name[:-7] or "Untyped", 8)})
            return _Anything

        def persistent_load(self, pid):
            if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
                kind, key, numel = pid[1], pid[2], pid[4]
                if not isinstance(numel, int) or numel < 0:
                    raise pickle.UnpicklingError(f"storage {key!r} with size {numel!r}")
                claims[str(key)] = numel * getattr(kind, "element", 8)
            return _Anything()

    for _ in range(4):  # magic number, protocol, system info, then the object itself
        Scan(f).load()
    return sum(claims.values())


def check_torch_file(path: Path, where: str) -> None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        if head[:4] == b"PK\x03\x04":
            # torch compares each storage with its record's size; what is left is a member that
            # expands far beyond its stored bytes (torch.save itself never compresses)
            open_zip(path, where).close()
            return
        f.seek(0)
        if _is_tar(f):
            raise BadInput(
                f"{where}: a torch file in the pre-2018 tar format, which is not read "
                "(re-save it with torch.save under a current torch)"
            )
        f.seek(0)
        try:
            claimed = _legacy_claims(f)
        except Exception as e:  # noqa: BLE001 - any damage to the pickle stream
            raise BadInput(
                f"{where}: not a readable torch file ({type(e).__name__}: {str(e)[:160]})"
            ) from None
    if claimed > size:
        raise BadInput(
            f"{where}: its storages claim {claimed:,} bytes, more than the file's {size:,} "
            "(damaged or hostile file)"
        )


def _is_tar(f) -> bool:
    try:
        with tarfile.open(fileobj=f, mode="r:") as t:
            return t.next() is not None
    except (tarfile.TarError, EOFError, ValueError, OSError):
        return False


def torch_load(path: str | Path, what: str = "torch file", where: str | None = None):
    """torch.load(weights_only=True), after the size checks above, and with every tensor backed by
    as many bytes as its shape needs (zero strides could make a tiny storage look enormous)."""
    path = Path(path)
    where = _where(path, where)
    check_torch_file(path, where)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - torch's errors for damaged files are many
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise BadInput(f"{where}: not a readable {what} ({type(e).__name__}: {first})") from None
    _check_tensors(obj, where)
    return obj


def _check_tensors(obj, where: str) -> None:
    def check(t) -> None:
        if (
            isinstance(t, torch.Tensor)
            and t.numel()
            and t.numel() * t.element_size() > t.untyped_storage().nbytes()
        ):
            raise BadInput(
                f"{where}: a tensor of shape {tuple(t.shape)} is backed by only "
                f"{t.untyped_storage().nbytes():,} bytes (zero strides?); refusing it"
            )

    walk(obj, where, check)


# ---- structures (pickles, cards, JSON) ----------------------------------------------------------
MAX_ITEMS = 10_000_000  # a checkpoint's optimiser state or a CIFAR batch's lists: ~10^4..10^6
MAX_DEPTH = 100  # a checkpoint nests ~6 levels


def containers(obj):
    """The items of a dict (keys and values), list or tuple; None for anything else."""
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple)):
        return obj
    return None


def walk(
    obj, where: str, visit=None, children=containers, items: int = MAX_ITEMS, depth: int = MAX_DEPTH
) -> int:
    """The number of items `obj` holds when every shared reference is counted as a copy, which
    is what anyone who copies, prints or compares it pays: a pickle's memo (and torch.load's)
    lets 40 nested `x = (x, x)` in a few hundred bytes stand for 2^40 items. Each shared node is
    visited once (`visit(leaf)` for every non-container), so the walk itself is linear in the
    file; more than `items` items, more than `depth` levels or a structure that contains itself
    is refused (BadInput naming `where`)."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(x, level: int) -> int:
        key = id(x)
        if key in sizes:
            return sizes[key]
        kids = children(x)
        if kids is None:
            if visit is not None:
                visit(x)
            sizes[key] = 1
            return 1
        if level >= depth:
            raise BadInput(f"{where}: nested more than {depth} levels deep; refusing it")
        if key in busy:
            raise BadInput(f"{where}: a structure that contains itself; refusing it")
        busy.add(key)
        n = 1
        for k in kids:
            n += size(k, level + 1)
            if n > items:
                raise BadInput(
                    f"{where}: stands for more than {items:,} items once its shared "
                    "references are counted (a pickle bomb?); refusing it"
                )
        busy.discard(key)
        sizes[key] = n
        return n

    return size(obj, 0)


def regular(path: str | Path, where: str, limit: int | None = None) -> int:
    """The size of a regular file; a folder, a FIFO or a device in its place (which would block
    or never end) is refused, and so is a file over `limit` bytes."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file") from None
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{where}: is a folder; expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(f"{where}: not a regular file (a FIFO or a device?)")
    if limit is not None and st.st_size > limit:
        raise BadInput(f"{where}: {st.st_size:,} bytes is too large (limit {limit:,})")
    return st.st_size


def text(path: str | Path, where: str, limit: int = 64 << 20) -> str:
    """A small text file (labels, class lists, configs): regular, at most `limit` bytes, UTF-8."""
    regular(path, where, limit)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise BadInput(f"{where}: not a UTF-8 text file") from None
