"""Unpickling files from strangers without executing their code.

`pickle.load` can call any importable function named in the file. CIFAR-10's python batches and
caffe-tensorflow's `.npy` weight dicts are pickles, so they are read with an unpickler that
resolves only numpy's array-reconstruction names; builtin containers, strings and numbers need
no lookup at all. Anything else is refused with an UnpicklingError.
"""
from __future__ import annotations

import codecs
import io
import pickle

import numpy as np

try:  # numpy >= 2 moved the internals; pickles name either place
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED = {"_reconstruct": _reconstruct, "scalar": scalar}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module in _MULTIARRAY and name in _ALLOWED:
            return _ALLOWED[name]
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # protocol-2 pickles spell bytes this way
            return codecs.encode
        if module == "numpy.dtypes" and name.endswith("DType"):  # numpy 2 pickles dtype classes
            return getattr(np.dtypes, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays and plain "
                                     "containers are allowed in this file")


def safe_loads(data: bytes, *, encoding: str = "bytes"):
    """Unpickle `data` allowing numpy arrays/dtypes and builtin containers only."""
    return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
