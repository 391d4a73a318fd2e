"""Unpickling files from strangers without executing their code — or trusting their sizes.

`pickle.load` can call any importable function named in the file. CIFAR-10's python batches and
caffe-tensorflow's `.npy` weight dicts are pickles, so they are read with an unpickler that
resolves only the names numpy's own array pickles use; builtin containers, strings and numbers
need no lookup at all. Anything else is refused with an UnpicklingError.

Resolving numpy's names is not enough: `_reconstruct(ndarray, shape, dtype)` allocates `shape`
uninitialised (a few bytes of pickle can ask for gigabytes, and return heap garbage as weights),
and `ndarray.__setstate__` trusts the state it is given (an object array whose item list is
shorter than its shape crashes the interpreter). So numpy's functions are never called on what
the file says: they are stood in for by placeholders that check each array's shape against the
data it actually carries, and are turned into real arrays only when they do.
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
import re

import numpy as np

from .errors import BadInput
from .untrusted import containers, walk

_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_SIMPLE_DTYPE = re.compile(r"^[<>|=]?([biufcSUV]\d{1,4}|O\d?|b1|\?)$")
MAX_DIMS = 32


class _Refused(pickle.UnpicklingError):
    pass


class _NDArrayName:
    """What the name numpy.ndarray resolves to: a marker for `_reconstruct`, never callable (a
    REDUCE of ndarray itself would allocate any shape uninitialised)."""

    def __new__(cls, *args, **kwargs):
        raise _Refused("refusing to call numpy.ndarray directly: an array must carry its data")


class _Dtype:
    """Stands for numpy.dtype(name, align, copy); BUILD may set the byte order."""

    def __init__(self, name, align=False, copy=True):
        name = _text(name)  # Python 2's str: bytes under encoding="bytes"
        if not isinstance(name, str) or not _SIMPLE_DTYPE.match(name):
            raise _Refused(
                f"refusing dtype {name!r}: only plain numeric, bytes, str and object dtypes are allowed"
            )
        self.dtype = np.dtype(name)

    def __setstate__(self, state):
        order = _text(state[1]) if isinstance(state, tuple) and len(state) >= 2 else None
        if order not in ("<", ">", "|", "="):
            raise _Refused(f"refusing a damaged dtype state {state!r:.80}")
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)


class _Array:
    """Stands for numpy's `_reconstruct(ndarray, (0,), b'b')` followed by BUILD(state)."""

    def __init__(self, subtype, shape, dtype_code):
        if subtype is not _NDArrayName or not isinstance(shape, tuple) or shape != (0,):
            # numpy itself always writes (ndarray, (0,), b'b'); anything else allocates blindly
            raise _Refused(
                f"refusing an array reconstruction with shape {shape!r:.40}: an array must carry its data"
            )
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise _Refused("refusing a damaged array state")
        _, shape, dtype, fortran, data = state
        if isinstance(dtype, _Dtype):
            dtype = dtype.dtype
        if not isinstance(dtype, np.dtype):
            raise _Refused("refusing an array without a dtype")
        if (
            not isinstance(shape, tuple)
            or len(shape) > MAX_DIMS
            or not all(isinstance(d, int) and 0 <= d < 2**40 for d in shape)
        ):
            raise _Refused(f"refusing an array of shape {shape!r:.60}")
        count = math.prod(shape)
        order = "F" if fortran else "C"
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != count:
                raise _Refused(
                    f"an object array of shape {shape} carries "
                    f"{len(data) if isinstance(data, list) else 'no'} items"
                )
            arr = np.empty(count, dtype=object)
            arr[:] = data if count else []
            self.array = arr.reshape(shape, order=order)
        else:
            if isinstance(data, str):  # Python 2 wrote the data as a `str`, read back as latin-1 text
                try:
                    data = data.encode("latin1")
                except UnicodeEncodeError:
                    raise _Refused("refusing array data that is text, not bytes") from None
            if not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.itemsize:
                got = len(data) if isinstance(data, (bytes, bytearray)) else "no"
                raise _Refused(
                    f"an array of shape {shape} and dtype {dtype} needs "
                    f"{count * dtype.itemsize:,} bytes and carries {got}"
                )
            self.array = np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order=order).copy(order="K")


def _text(v):
    """A name Python 2 pickled as `str`: text under encoding="latin1", bytes under "bytes"."""
    if isinstance(v, bytes):
        try:
            return v.decode("ascii")
        except UnicodeDecodeError:
            return None
    return v


def _scalar(dtype, data=None):
    dtype = dtype.dtype if isinstance(dtype, _Dtype) else dtype
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise _Refused("refusing an object scalar")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise _Refused(f"a {dtype} scalar needs {dtype.itemsize} bytes")
    return np.frombuffer(bytes(data), dtype=dtype)[0]


def _frombuffer(buf, dtype, shape, order="C"):
    """Protocol 5's in-band form of an array: numpy._core.numeric._frombuffer."""
    holder = _Array(_NDArrayName, (0,), b"b")
    data = buf.raw().tobytes() if isinstance(buf, pickle.PickleBuffer) else buf
    holder.__setstate__((1, shape, dtype, order == "F", data))
    return holder


def _bytes(*args):
    """Protocol 2 writes b"" as `__builtin__.bytes()`; bytes(n) would allocate n bytes."""
    if args:
        raise _Refused("refusing bytes(...) with arguments")
    return b""


def _encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused("refusing _codecs.encode other than latin1 (protocol-2 bytes)")
    return codecs.encode(text, "latin1")


_GLOBALS = {
    ("numpy", "ndarray"): _NDArrayName,
    ("numpy", "dtype"): _Dtype,
    ("_codecs", "encode"): _encode,
    ("__builtin__", "bytes"): _bytes,
    ("builtins", "bytes"): _bytes,
}
_GLOBALS.update({(m, "_reconstruct"): _Array for m in _MULTIARRAY})
_GLOBALS.update({(m, "scalar"): _scalar for m in _MULTIARRAY})
_GLOBALS.update({(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")})


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only numpy arrays and plain "
            "containers are allowed in this file"
        )


def _children(obj):
    """What a placeholder or container holds: an object array's items are walked like a list's."""
    if isinstance(obj, _Array):
        return obj.array.reshape(-1).tolist() if obj.array is not None and obj.array.dtype.hasobject else ()
    return containers(obj)


def _materialise(obj, memo: dict):
    """Placeholders -> real arrays, through containers (and object arrays' items); each shared
    object is built once (`memo`), so what the pickle shares stays shared."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _Array):
        if obj.array is None:
            raise _Refused("an array was never given its data")
        out = obj.array
        if out.dtype.hasobject:
            flat = out.reshape(-1)
            for i in range(flat.size):
                flat[i] = _materialise(flat[i], memo)
    elif isinstance(obj, _Dtype):
        out = obj.dtype
    elif isinstance(obj, dict):
        out = {_materialise(k, memo): _materialise(v, memo) for k, v in obj.items()}
    elif isinstance(obj, list):
        out = [_materialise(v, memo) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_materialise(v, memo) for v in obj)
    else:
        out = obj
    memo[key] = out
    return out


def safe_loads(data: bytes, *, encoding: str = "bytes"):
    """Unpickle `data` allowing numpy arrays/dtypes and builtin containers only; every array
    must carry exactly the bytes its shape needs, so nothing outgrows the file, and the whole
    (shared references counted as copies) must stay within untrusted.walk's budget.
    Python 2's numpy pickles (array data in a `str`) load under either encoding."""
    raw = RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    try:
        walk(raw, "the pickle", children=_children)
    except BadInput as e:
        raise _Refused(str(e)) from None
    return _materialise(raw, {})
