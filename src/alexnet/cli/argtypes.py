"""Command-line value types: a flag's value is refused where it is read, in one line, with the range
it must be in; usage errors are one line too (exit status 2), like every other error."""

from __future__ import annotations

import argparse
import math

from ..errors import BadInput
from ..jsonio import loads


class Parser(argparse.ArgumentParser):
    """Usage errors are one line too, like every other error (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def int_in(lo: int, hi: int):
    """An argparse type: an integer lo..hi, so that a flag's value is refused where it is read."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer {lo}..{hi:,}, got {text!r:.40}")
        return v

    return parse


def float_in(lo: float, hi: float, open_low: bool = False):
    """An argparse type: a finite number in [lo, hi] (or (lo, hi])."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = None
        if v is None or not (lo < v if open_low else lo <= v) or not v <= hi:
            raise argparse.ArgumentTypeError(
                f"expected a number in {'(' if open_low else '['}{lo:g}, {hi:g}], got {text!r:.40}"
            )
        return v

    return parse


def json_object(text: str) -> dict:
    """An argparse type: a JSON object, e.g. '{"groups": 1}' (no NaN or infinities, nesting bounded)."""
    try:
        v = loads(text, "JSON")
    except BadInput as e:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"groups\": 1}}', got "
            f"{text!r:.60} ({str(e).removeprefix('JSON: ')})"
        ) from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"groups\": 1}}', got {text!r:.60}"
        )
    return v


def name_number(text: str) -> tuple[str, float]:
    """An argparse type: NAME=X with X in [0, 1000], e.g. fc8=10 (a per-layer learning-rate
    multiplier: NaN, infinities and negatives are refused here, not after training has begun)."""
    name, _, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not name or not 0 <= number <= 1e3:  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(
            f"expected NAME=NUMBER with NUMBER in [0, 1000], e.g. fc8=10, got {text!r:.40}"
        )
    return name, number


# a batch, a worker count, an image side, a count of steps or images
BATCH, WORKERS, SIDE, COUNT = int_in(1, 1 << 16), int_in(0, 256), int_in(1, 8192), int_in(1, 10**10)


def workers_or_auto(text: str) -> int | str:
    """--workers: loader processes 0..256, or auto (by device: alexnet.data.resolve_workers)."""
    if text == "auto":
        return text
    try:
        return WORKERS(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto or an integer 0..256, got {text!r:.40}") from None
