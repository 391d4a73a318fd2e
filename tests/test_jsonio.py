"""Every JSON the package writes is strict JSON (RFC 8259: no Infinity, no NaN)."""

import json
import math

import numpy as np
import pytest
import torch

from alexnet.jsonio import dumps, write_json


def strict_load(text):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null(tmp_path):
    obj = {
        "best": float("inf"),
        "loss": float("nan"),
        "neg": -math.inf,
        "ok": 0.25,
        "np": np.float32(1.5),
        "arr": np.arange(3),
        "t": torch.tensor([1.0, float("inf")]),
        3: (1, 2),
    }
    back = strict_load(dumps(obj))
    assert back == {
        "best": None,
        "loss": None,
        "neg": None,
        "ok": 0.25,
        "np": 1.5,
        "arr": [0, 1, 2],
        "t": [1.0, None],
        "3": [1, 2],
    }
    path = write_json(tmp_path / "s.json", {"x": float("nan")})
    assert strict_load(path.read_text()) == {"x": None}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left
    with pytest.raises(TypeError, match="cannot write object"):
        dumps({"x": object()})
