"""Strict JSON out of everything the package writes: `Infinity` and `NaN` are not JSON (RFC 8259)
and break jq, JavaScript and most JSON parsers, so non-finite numbers become null. A best error
of `inf` (no epoch finished yet) is written as null. JSON read from a flag or a file is just as
strict, and its nesting is bounded (`loads`)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .errors import BadInput
from .fileio import atomic_write_text
from .untrusted import walk


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


MAX_JSON_DEPTH = 32  # a model option, a card, a Keras config: a handful of levels


def loads(text: str | bytes, where: str, depth: int = MAX_JSON_DEPTH):
    """JSON from a flag or a file, in one line naming `where` when it is not: Python's parser
    takes NaN, Infinity and 1e999 (infinite) and fails deep inside itself on a deeply nested
    document (RecursionError); both are refused here, with the nesting bounded to `depth`."""

    def no_constant(name):
        raise ValueError(f"{name} is not a JSON number")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as e:
        raise BadInput(f"{where}: not JSON ({e.msg} at character {e.pos})") from None
    except (ValueError, TypeError) as e:  # NaN, bytes that are not UTF-8, no text at all
        raise BadInput(f"{where}: not JSON ({e})") from None
    except RecursionError:
        raise BadInput(f"{where}: JSON nested more than {depth} levels deep") from None

    def finite(v) -> None:
        if isinstance(v, float) and not math.isfinite(v):
            raise BadInput(f"{where}: a number too large for a float (such as 1e999) is not usable")

    walk(value, where, visit=finite, depth=depth)
    return value
