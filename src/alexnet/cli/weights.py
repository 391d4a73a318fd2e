"""`alexnet weights`: the published weights known by name, and their download."""

from __future__ import annotations

from ..errors import BadInput
from ..interop.hub import WEIGHTS, format_table, resolve
from .options import add, command


def register(sub) -> None:
    s = command(
        sub,
        "weights",
        "the pretrained weights known by name: source, checksum, accuracy, licence, cached or not",
        "The published AlexNet weights this package knows by name, with source, checksum,\n"
        "published accuracy, licence and whether a verified copy is cached.",
        "alexnet weights --download caffenet",
        run,
    )
    add(
        s,
        "--download",
        nargs="+",
        default=None,
        metavar="NAME",
        default_text="download nothing",
        help="fetch and verify these now (the other commands fetch a name on first use)",
    )


def run(args) -> int:
    unknown = [n for n in args.download or [] if n not in WEIGHTS]
    if unknown:
        raise BadInput(f"--download {unknown[0]!r}: not a name from `alexnet weights` ({', '.join(WEIGHTS)})")
    for name in args.download or []:
        print(f"{name}: {resolve(name)}")
    print(format_table())
    return 0
