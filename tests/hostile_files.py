"""Hostile files of every kind the package reads, written by hand in each format's real layout and
small (bytes to kilobytes): what tests/test_hostile.py and benchmarks/hostile_sweep.py feed to
the command line. Each maker writes one file and returns its path; none is checked in."""

from __future__ import annotations

import collections
import gzip
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import torch

# ---- .npy ---------------------------------------------------------------------------------------


def npy_bytes(header: dict | str, payload: bytes = b"", version: int = 1) -> bytes:
    """A .npy file with any header text (a dict is written as numpy writes it) and payload."""
    text = header if isinstance(header, str) else repr(header)
    size = 2 if version == 1 else 4
    pad = 64 - (8 + size + len(text) + 1) % 64
    text = text + " " * (pad % 64) + "\n"
    return (
        b"\x93NUMPY"
        + bytes([version, 0])
        + len(text).to_bytes(size, "little")
        + text.encode("latin1")
        + payload
    )


def npy_header(descr: str, shape: tuple, fortran: bool = False) -> dict:
    return {"descr": descr, "fortran_order": fortran, "shape": shape}


def reconstruct_without_data(shape=(1_000_000_000,)) -> bytes:
    """numpy's `_reconstruct(ndarray, shape, b'b')` with no BUILD: an array that carries no data."""
    return (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01"
        + pickle.dumps(shape, protocol=2)[2:-1]
        + b"C\x01b\x87R."
    )


# ---- torch zip files ------------------------------------------------------------------------------
class Storage:
    """A storage reference in a torch pickle: its record key and the element count it claims."""

    def __init__(self, key: str, numel: int, kind=torch.FloatStorage):
        self.key, self.numel, self.kind = key, numel, kind


class Tensor:
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride) with any claims."""

    def __init__(self, storage: Storage, size, stride=None, offset: int = 0):
        self.storage, self.size, self.offset = storage, tuple(size), offset
        if stride is None:
            stride, acc = [], 1
            for d in reversed(self.size):
                stride.insert(0, acc)
                acc *= d
        self.stride = tuple(stride)

    def __reduce__(self):
        return (
            torch._utils._rebuild_tensor_v2,
            (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()),
        )


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None


def torch_zip(path: Path, obj, records: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> Path:
    """A torch.save-layout zip (archive/data.pkl + archive/data/<key>) holding any claims."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, data in records.items():
            z.writestr(zipfile.ZipInfo(f"archive/data/{key}"), data, compress_type=compress)
        z.writestr("archive/version", "3\n")
    return path


def with_digest(path: Path) -> Path:
    """Re-save a torch file with the package's integrity digest: the digest is not a signature,
    anyone can compute it, so hostile files can carry a valid one."""
    from alexnet.fileio import save_pt

    save_pt(torch.load(path, weights_only=True), path)
    return path


def set_zip_sizes(data: bytes, name: str, file_size: int) -> bytes:
    """Rewrite the uncompressed size a zip declares for one member (local and central headers)."""
    b = bytearray(data)
    enc = name.encode()
    for sig, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):
        i = 0
        while (i := b.find(sig, i)) >= 0:
            n = struct.unpack_from("<H", b, i + (26 if sig == b"PK\x03\x04" else 28))[0]
            if bytes(b[i + name_at : i + name_at + n]) == enc:
                struct.pack_into("<I", b, i + size_at, file_size)
            i += 4
    return bytes(b)


# ---- safetensors ----------------------------------------------------------------------------------
def safetensors_bytes(header: dict | bytes, data: bytes = b"", header_len: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data


# ---- Caffe ----------------------------------------------------------------------------------------
def varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # negative int64s are ten-byte varints
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def blob(dims, data: bytes = b"", legacy: dict | None = None) -> bytes:
    """A BlobProto: shape (field 7, packed int64 dims) or legacy num/channels/height/width."""
    if legacy is not None:
        head = b"".join(
            varint(n << 3) + varint(v)
            for n, v in zip(
                (1, 2, 3, 4), (legacy["num"], legacy["channels"], legacy["height"], legacy["width"])
            )
        )
    else:
        head = field(7, field(1, b"".join(varint(d) for d in dims)))
    return head + (field(5, data) if data else b"")


def caffemodel_bytes(layers: list[tuple[str, str, list[bytes]]]) -> bytes:
    """NetParameter{layer: LayerParameter{name, type, blobs}} from (name, type, [blob bytes])."""
    return b"".join(
        field(100, field(1, n.encode()) + field(2, t.encode()) + b"".join(field(7, b) for b in bl))
        for n, t, bl in layers
    )


ALEXNET_LAYERS = [(f"conv{i}", "Convolution") for i in range(1, 6)] + [
    (f"fc{i}", "InnerProduct") for i in (6, 7, 8)
]


def small_caffemodel(dims=(2, 2), data: bytes | None = None) -> bytes:
    """AlexNet's 5 convolutions and 3 inner products, each with tiny blobs (wrong shapes)."""
    w = np.ones(int(np.prod(dims)), np.float32).tobytes() if data is None else data
    return caffemodel_bytes(
        [
            (n, t, [blob(dims, w), blob((dims[0],), np.ones(dims[0], np.float32).tobytes())])
            for n, t in ALEXNET_LAYERS
        ]
    )


# ---- IDX, CIFAR ---------------------------------------------------------------------------------------
def idx_bytes(dims, body: bytes | None = None) -> bytes:
    head = bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return head + (bytes(int(np.prod(dims))) if body is None else body)


def idx_folder(
    folder: Path,
    images=(2, 28, 28),
    labels=(2,),
    label_values=(0, 1),
    gz=True,
    image_body: bytes | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lab = bytes(label_values)
    for prefix in ("train", "t10k"):
        for kind, dims, body in (("images-idx3", images, image_body), ("labels-idx1", labels, lab)):
            raw = idx_bytes(dims, body)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return folder


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzipped: about size/1000 bytes on disk."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as g:
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            g.write(chunk)
        g.write(bytes(size & ((1 << 20) - 1)))
    return out.getvalue()


def cifar_batch(n=2, labels=None, data: bytes | None = None) -> bytes:
    d = {
        b"data": np.zeros((n, 3072), np.uint8) if data is None else np.frombuffer(data, np.uint8),
        b"labels": list(range(n)) if labels is None else labels,
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }
    return pickle.dumps(d, protocol=2)


def tar_bytes(members: dict[str, bytes], declared: dict[str, int] | None = None, mode: str = "w") -> bytes:
    """A tar (or .tar.gz with mode 'w:gz') of the members; `declared` lies about member sizes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    if declared and mode == "w":  # rewrite the size field (octal, 12 bytes at 124) and checksum
        b = bytearray(raw)
        for i in range(0, len(b) - 512, 512):
            name = bytes(b[i : i + 100]).rstrip(b"\0").decode(errors="replace")
            if name in declared:
                b[i + 124 : i + 136] = f"{declared[name]:011o}\0".encode()
                b[i + 148 : i + 156] = b" " * 8
                b[i + 148 : i + 156] = f"{sum(b[i : i + 512]):06o}\0 ".encode()
        raw = bytes(b)
    return raw


def cifar_archive(path: Path, batch: bytes | None = None, meta: bytes | None = None, mode="w:gz") -> Path:
    members = {f"cifar-10-batches-py/data_batch_{i}": batch or cifar_batch() for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch or cifar_batch()
    members["cifar-10-batches-py/batches.meta"] = meta or pickle.dumps(
        {b"label_names": [f"c{i}".encode() for i in range(10)]}, protocol=2
    )
    path.write_bytes(tar_bytes(members, mode=mode))
    return path


# ---- Keras --------------------------------------------------------------------------------------------
def keras_zip(path: Path, members: dict[str, bytes], compress=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def h5_bytes(datasets: dict[str, tuple], attrs: dict | None = None) -> bytes:
    """An HDF5 file of datasets declared with shapes but never written (no storage allocated)."""
    import h5py

    out = io.BytesIO()
    with h5py.File(out, "w") as f:
        for name, shape in datasets.items():
            f.create_dataset(name, shape=shape, dtype="f4")
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return out.getvalue()


def h5_reaching_out(path: Path, how: str, target: Path) -> Path:
    """A Keras 3 .weights.h5 whose BatchNormalization beta (layers/batch_normalization/vars/1)
    is not in the file: its bytes kept in `target` (HDF5 external storage), an external link to
    a dataset of the HDF5 file `target`, a soft link through an external link to that file's
    root, a virtual dataset over it, or compressed with a filter number HDF5 would load a plugin
    for."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    beta = "layers/batch_normalization/vars/1"
    with h5py.File(path, "w") as f:
        for i in (0, 2, 3):
            f[f"layers/batch_normalization/vars/{i}"] = np.ones(96, np.float32)
        if how == "external":
            f.create_dataset(beta, shape=(96,), dtype="f4", external=[(str(target), 0, 384)])
        elif how == "link":
            f[beta] = h5py.ExternalLink(str(target), "/beta")
        elif how == "soft":  # a path inside the file that leaves it on the way
            f["elsewhere"] = h5py.ExternalLink(str(target), "/")
            f[beta] = h5py.SoftLink("/elsewhere/beta")
        elif how == "virtual":
            layout = h5py.VirtualLayout(shape=(96,), dtype="f4")
            layout[:] = h5py.VirtualSource(str(target), "beta", shape=(96,))
            f.create_virtual_dataset(beta, layout)
        elif how == "filter":
            f.create_dataset(beta, data=np.ones(96, np.float32), compression=30999, allow_unknown_filter=True)
    return path


def h5_target(path: Path) -> Path:
    """An HDF5 file with a dataset `beta`: what an external link or a virtual dataset reads."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["beta"] = np.full(96, 7, np.float32)
    return path


# ---- feature indexes ----------------------------------------------------------------------------------
def npz_bytes(members: dict[str, bytes], compress=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compress) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def npy_of(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, arr, allow_pickle=False)
    return out.getvalue()


def index_members(n: int = 3, dim: int = 4, **override) -> dict[str, bytes]:
    """The members of a valid `alexnet features` index, any of them replaced by raw bytes."""
    arrays = dict(
        features=np.ones((n, dim), np.float32),
        paths=np.array([f"p{i}.png" for i in range(n)]),
        labels=np.zeros(n, np.int64),
        indices=np.arange(n),
        layer=np.array("pool5"),
        weights=np.array("w.pt"),
        data=np.array("data"),
        split=np.array("val"),
        classes=np.array(["cat", "dog"]),
    )
    members = {f"{k}.npy": npy_of(v) for k, v in arrays.items()}
    members.update({f"{k}.npy": v for k, v in override.items()})
    return {k: v for k, v in members.items() if v is not None}


# ---- small makers for tests/test_hostile.py -------------------------------------------------------
CARD = dict(
    model="cifar_convnet",
    num_classes=2,
    input_size=32,
    in_channels=3,
    resize=32,
    mean=[0.5] * 3,
    std=None,
    pixel_scale=255.0,
    channel_order="RGB",
    lrn="paper",
    classes=["cat", "dog"],
    source="t",
)
ONE = np.ones(4, np.float32).tobytes()


def torch_save(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def card_pt(path: Path, state: dict, **change) -> Path:
    return torch_save(path, {"model": state, "card": {**CARD, **change}})


def stride0(path: Path) -> Path:
    """A state dict whose fc8 claims 90,000 x 1024 values over a 4-byte storage (zero strides)."""
    s = Storage("0", 1)
    big = Tensor(s, (90_000, 1024), (0, 0))
    obj = {
        "features.conv1.weight": Tensor(s, (96, 3, 11, 11), (0, 0, 0, 0)),
        "features.conv2.weight": Tensor(s, (256, 48, 5, 5), (0, 0, 0, 0)),
        "classifier.fc8.weight": big,
    }
    return torch_zip(path, obj, {"0": ONE[:4]})


def legacy_claims(path: Path) -> Path:
    """A pre-1.6 (non-zip) torch file whose storage claims 10^10 floats: torch allocates them."""
    import collections
    import io

    class T:
        def __reduce__(self):
            return (
                torch._utils._rebuild_tensor_v2,
                (Storage("k", 10**10), 0, (4,), (1,), False, collections.OrderedDict()),
            )

    class P(_Pickler):
        def persistent_id(self, obj):
            return (
                ("storage", torch.FloatStorage, "k", "cpu", obj.numel, None)
                if isinstance(obj, Storage)
                else None
            )

    b = io.BytesIO()
    for head in (
        0x1950A86A20F9469CFC6C,
        1001,
        dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4)),
    ):
        pickle.dump(head, b, protocol=2)
    P(b, protocol=2).dump({"w": T()})
    pickle.dump(["k"], b, protocol=2)
    return write(path, b.getvalue() + (10**10).to_bytes(8, "little") + bytes(16))


def declared(path: Path, member: str, raw: bytes) -> Path:
    return write(path, set_zip_sizes(raw, member, 0xFFFFFFF0))


def shard(path: Path, members: dict, declared=None) -> Path:
    return write(path, tar_bytes(members, declared))


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def index(path: Path, **members) -> Path:
    return write(path, npz_bytes(index_members(**members)))


def ck(path: Path, **change) -> Path:
    from alexnet.fileio import save_pt

    ck = dict(
        model={},
        optimizer={},
        schedule={},
        epoch=0,
        step=0,
        in_epoch=0,
        best=1.0,
        rng=[{}],
        config={},
        card={"classes": []},
    )
    ck.update(change)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_pt(ck, path)  # a valid digest: anyone can compute one
    return path


def run_with(path: Path, **files) -> Path:
    for name, text in files.items():
        write(path / name, text)
    (path / "last.pt").touch(exist_ok=True)
    return path


def flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x10
    return bytes(b)


def gz(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, 6)


def dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- Python 2 pickles, byte for byte ------------------------------------------------------------
class Py2:
    """What Python 2.7's cPickle writes at protocol 2 (numpy.save and CIFAR's batches used it),
    opcode by opcode, for dicts, lists, tuples, str (bytes here: Python 2's str), ints, bools,
    None and numpy arrays. cPickle's rules, checked byte for byte against Python 2.7.18 with
    numpy 1.16.6 (test_python2_pickles_are_byte_exact): memo numbers start at 1; globals, reduced
    objects and non-empty lists and dicts are always memoised (BINPUT), other objects only where
    a second reference holds them (cPickle skips refcount 1): as a list item, dict key or value,
    never as an element of a tuple (a shape, an array's data, a reduce's arguments); 1-byte
    strings never. A global or a dtype met again is a BINGET. Lists and dicts are filled by one
    APPEND/SETITEM or by MARK ... APPENDS/SETITEMS (batches of 1000). An array is
    `_reconstruct(ndarray, (0,), 'b')` then BUILD with (1, shape, dtype, fortran, data), its data
    a `str` (SHORT_BINSTRING/BINSTRING) or, for an object array, a list; a dtype is
    `numpy.dtype('f4', 0, 1)` then BUILD with (3, '<', None, None, None, -1, -1, flags)."""

    def __init__(self):
        self.out, self.memo = bytearray(b"\x80\x02"), {}

    def dumps(self, obj) -> bytes:
        self.save(obj, held=True)  # the caller's reference
        return bytes(self.out + b".")

    def _put(self, key=None) -> None:
        n = len(self.memo) + 1  # cPickle: "pickle.py starts with PUT index 0, not 1"
        self.memo[key if key is not None else object()] = n
        self.out += b"q" + bytes([n]) if n < 256 else b"r" + struct.pack("<I", n)

    def _get(self, key) -> bool:
        if key not in self.memo:
            return False
        i = self.memo[key]
        self.out += b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)
        return True

    def _global(self, module: str, name: str) -> None:
        if not self._get(("global", module, name)):
            self.out += f"c{module}\n{name}\n".encode()
            self._put(("global", module, name))

    def save(self, obj, held: bool = False) -> None:
        if obj is None:
            self.out += b"N"
        elif isinstance(obj, bool):
            self.out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, int):
            if 0 <= obj < 256:
                self.out += b"K" + bytes([obj])
            elif 0 <= obj < 65536:
                self.out += b"M" + struct.pack("<H", obj)
            elif -(1 << 31) <= obj < 1 << 31:
                self.out += b"J" + struct.pack("<i", obj)
            else:  # a 64-bit int: cPickle writes it as text
                self.out += b"I%d\n" % obj
        elif isinstance(obj, bytes):  # Python 2's str
            self.out += (
                b"U" + bytes([len(obj)]) if len(obj) < 256 else b"T" + struct.pack("<i", len(obj))
            ) + obj
            if held and len(obj) >= 2:
                self._put()
        elif isinstance(obj, tuple):
            if not obj:
                self.out += b")"
                return
            self.out += b"(" if len(obj) > 3 else b""
            for v in obj:
                self.save(v)
            self.out += b"t" if len(obj) > 3 else b"\x85\x86\x87"[len(obj) - 1 : len(obj)]
            if held:
                self._put()
        elif isinstance(obj, list):
            self.out += b"]"
            if obj or held:
                self._put()
            self._batch([(v,) for v in obj], b"a", b"e")
        elif isinstance(obj, dict):
            self.out += b"}"
            if obj or held:
                self._put()
            self._batch(list(obj.items()), b"s", b"u")
        elif isinstance(obj, np.dtype):
            if self._get(("dtype", obj.str)):  # numpy's dtypes are singletons
                return
            self._global("numpy", "dtype")
            self.save((f"{obj.kind}{obj.itemsize}".encode(), 0, 1))
            self.out += b"R"
            self._put(("dtype", obj.str))
            order = b"|" if obj.itemsize == 1 or obj.kind == "O" else obj.byteorder.replace("=", "<").encode()
            self.save((3, order, None, None, None, -1, -1, 63 if obj.kind == "O" else 0))
            self.out += b"b"
        elif isinstance(obj, np.ndarray):
            self._global("numpy.core.multiarray", "_reconstruct")
            self._global("numpy", "ndarray")  # the first of the arguments (ndarray, (0,), 'b')
            self.save((0,))
            self.save(b"b")
            self.out += b"\x87R"
            self._put()
            fortran = bool(obj.flags.f_contiguous and not obj.flags.c_contiguous)
            data = obj.reshape(-1, order="A").tolist() if obj.dtype.kind == "O" else obj.tobytes(order="A")
            self.save((1, tuple(int(d) for d in obj.shape), obj.dtype, fortran, data))
            self.out += b"b"
        else:
            raise TypeError(f"Py2 pickles no {type(obj).__name__}")

    def _batch(self, items: list[tuple], one: bytes, many: bytes) -> None:
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            self.out += b"(" if len(chunk) > 1 else b""
            for item in chunk:
                for v in item:
                    self.save(v, held=True)  # the iteration holds a second reference
            self.out += many if len(chunk) > 1 else one


def py2_npy(obj, align: int = 16) -> bytes:
    """np.save(f, obj) as Python 2's numpy wrote it for a pickled (object) array: format 1.0, the
    header's keys sorted and padded to `align` bytes (16 before numpy 1.14, as in Guerzhoy's 2016
    file; 64 from 1.14), then cPickle.dump(array, f, protocol=2)."""
    arr = np.empty((), dtype=object)
    arr[()] = obj
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    pad = align - (10 + len(header) + 1) % align
    header += " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + Py2().dumps(arr)


# ---- shared references, nesting, padded deflate ------------------------------------------------------
def dag(levels: int, leaf=()):
    """x = (x, x), `levels` times: a pickle (or torch.save) memoises x, so the file stays a few
    hundred bytes while the tree it stands for has 2^levels leaves."""
    x = leaf
    for _ in range(levels):
        x = (x, x)
    return x


def deep(levels: int, leaf=1):
    """[[[...leaf...]]], `levels` lists deep."""
    x = leaf
    for _ in range(levels):
        x = [x]
    return x


def deep_pickle(levels: int) -> bytes:
    """A pickle of lists nested `levels` deep, written without recursion (EMPTY_LIST pushed
    `levels` times, then APPENDed into each other): too deep for pickle.dumps itself to write."""
    return b"\x80\x02" + b"]" * levels + b"a" * (levels - 1) + b"."


def torch_zip_pickle(path: Path, pkl: bytes) -> Path:
    """torch.save's own zip, written by torch's writer (record names, alignment, version and
    byte-order records as torch.save makes them), whose data.pkl is the given pickle bytes."""

    class Raw:  # a pickle module whose Pickler writes `pkl` whatever it is given
        class Pickler:
            def __init__(self, f, protocol=2):
                self.f = f

            def dump(self, obj):
                self.f.write(pkl)

    torch.save(None, path, pickle_module=Raw)
    return path


def npy_pickle(obj) -> bytes:
    """np.save of a 0-d object array holding `obj`: numpy's own header and pickle, as a .npy of a
    dict of layers is written."""
    arr = np.empty((), dtype=object)
    arr[()] = obj
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def padded_zip(members: dict[str, bytes], pad: int) -> bytes:
    """A zip whose members are deflated and then followed by `pad` bytes of junk inside their
    stored size: the declared sizes look like a ratio of size/(compressed + pad), while the
    deflate stream really expands its own few bytes 1000:1 (zip readers stop at its end)."""
    import zlib

    out, central = bytearray(), bytearray()
    for name, data in members.items():
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        raw = c.compress(data) + c.flush() + bytes(pad)
        crc, enc = zlib.crc32(data), name.encode()
        head = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(raw), len(data), len(enc), 0)
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0,
                crc,
                len(raw),
                len(data),
                len(enc),
                0,
                0,
                0,
                0,
                0,
                len(out),
            )
            + enc
        )
        out += head + enc + raw
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + eocd)


# ---- a mirror that misbehaves ---------------------------------------------------------------------------
class HostileMirror:
    """A loopback HTTP server (a thread) whose answer depends on the name asked for:
    `huge`: declares 10^12 bytes and keeps sending; `endless`: no length, keeps sending;
    `trickle`: one byte every 0.2 s; `html`: a login page with status 200; any name in `files`:
    those bytes. `log` lists the names asked for."""

    def __init__(self):
        import http.server
        import threading

        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                import time

                name = self.path.rsplit("/", 1)[-1]
                mirror.log.append(name)
                how = mirror.behaviour.get(name, "file")
                self.send_response(200)
                if how == "html":
                    body = b"<html><body>Please log in</body></html>"
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if how == "file":
                    body = mirror.files[name]
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if how == "huge":
                    self.send_header("Content-Length", str(10**12))
                self.end_headers()
                try:
                    for _ in range(100_000):  # at most ~6 GB, or 5.5 hours of trickle
                        self.wfile.write(b"x" if how == "trickle" else bytes(1 << 16))
                        self.wfile.flush()
                        if how == "trickle":
                            time.sleep(0.2)
                except OSError:  # the client hung up: what it should do
                    pass

        self.files, self.behaviour, self.log = {}, {}, []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
