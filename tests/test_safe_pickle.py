"""The restricted unpickler: numpy's own pickles load; hostile ones are refused before numpy
allocates what they claim or trusts their state (hand-built pickles, every protocol)."""

import os
import pickle

import numpy as np
import pytest

from alexnet.safe_pickle import safe_loads

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct


class Reduce:
    """Pickles as `fn(*args)`, then BUILD(state) when a state is given."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def f4(shape):
    return np.dtype("f4")


@pytest.mark.parametrize("proto", [2, 3, 4, 5])
@pytest.mark.parametrize(
    "obj",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.array(7, dtype=">i4"),
        np.zeros((0, 5), np.uint8),
        np.array(["ab", "c"]),
        np.array([np.arange(3), "x", None], dtype=object),
    ],
    ids=lambda o: f"{o.dtype}{o.shape}",
)
def test_numpy_pickles_round_trip(obj, proto):
    back = safe_loads(pickle.dumps({"k": [obj, (obj,)]}, protocol=proto))
    for got in (back["k"][0], back["k"][1][0]):
        assert got.dtype == obj.dtype and got.shape == obj.shape
        assert got.flags.f_contiguous == obj.flags.f_contiguous
        if obj.dtype != object:
            np.testing.assert_array_equal(got, obj)
        else:
            np.testing.assert_array_equal(got[0], obj[0])
            assert got[1] == "x" and got[2] is None


@pytest.mark.parametrize(
    "hostile,match",
    [
        # _reconstruct with a real shape allocates it uninitialised: 4 GB from a 60-byte file
        (Reduce(_reconstruct, (np.ndarray, (1 << 30,), b"b")), "must carry its data"),
        # ... and an array never BUILT would be returned as heap garbage
        (Reduce(_reconstruct, (np.ndarray, (0,), b"b")), "never given its data"),
        # calling ndarray itself: the same allocation by another name
        (Reduce(np.ndarray, ((1 << 30,),)), "must carry its data|not callable|ndarray"),
        # a state whose shape needs more bytes than it carries
        (
            Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (1 << 28,), np.dtype("f4"), False, b"\0" * 8)),
            "needs 1,073,741,824 bytes and carries 8",
        ),
        # an object array with fewer items than its shape: numpy itself would crash the interpreter
        (
            Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (1000,), np.dtype("O"), False, [1, 2])),
            "carries 2 items",
        ),
        (
            Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**9,), np.dtype("O"), False, [1])),
            "carries 1 items",
        ),
        (Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (-1,), np.dtype("f4"), False, b"\0")), "shape"),
        (Reduce(bytes, (1 << 30,)), "bytes"),
        (Reduce(np.dtype, ("V999999999", False, True)), "refusing dtype"),
        (Reduce(os.system, ("echo owned",)), "refusing to load posix.system"),
    ],
)
def test_hostile_pickles_are_refused(hostile, match):
    data = pickle.dumps(hostile, protocol=2)
    assert len(data) < 300
    with pytest.raises(pickle.UnpicklingError, match=match):
        safe_loads(data)


def test_protocol5_buffer_must_match_its_shape():
    from numpy._core.numeric import _frombuffer

    data = pickle.dumps(Reduce(_frombuffer, (b"\0" * 4, np.dtype("f4"), (1 << 20,), "C")), protocol=5)
    with pytest.raises(pickle.UnpicklingError, match="carries 4"):
        safe_loads(data)
