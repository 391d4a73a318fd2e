"""Strict JSON out of everything the package writes: `Infinity` and `NaN` are not JSON (RFC 8259)
and break jq, JavaScript and most JSON parsers, so non-finite numbers become null. A best error
of `inf` (no epoch finished yet) is written as null."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .fileio import atomic_write_text


def plain(obj):
    """A JSON-ready copy: non-finite floats -> None, numpy/torch scalars and arrays -> Python."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return plain(obj.tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def dumps(obj, indent: int | None = 2) -> str:
    return json.dumps(plain(obj), indent=indent, allow_nan=False)


def write_json(path: str | Path, obj) -> Path:
    """Strict JSON, written to a temporary name and renamed: never a half-written file."""
    atomic_write_text(path, dumps(obj) + "\n")
    return Path(path)
