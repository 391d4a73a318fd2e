"""The `alexnet` command: one entry point, one module per command.

Each module of this folder that defines `register(subparsers)` is a command (or a group such as
`bench model|data`): `register` adds its parser (options, help, one example) and sets the
handler, `run(args) -> exit status`, which turns the options into a call of the library. A new
command is one new file here; options.py holds what several commands share. Errors become one
line here (errors.py: 2 for bad input, 1 at run time).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
import warnings
from types import ModuleType

from .. import __version__
from ..errors import classify, debug_enabled, one_line, shown
from . import argtypes as T
from .options import add

# listed first in `alexnet --help`, in the order of a project: see, train, measure, use; the
# other commands follow in alphabetical order
FIRST = ("models", "train", "finetune", "evaluate", "predict")


def commands() -> list[ModuleType]:
    """The command modules of this folder, in the order `alexnet --help` lists them."""
    found = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]
    found = [m for m in found if hasattr(m, "register")]
    short = {m: m.__name__.rpartition(".")[2] for m in found}
    return sorted(found, key=lambda m: (FIRST.index(short[m]) if short[m] in FIRST else len(FIRST), short[m]))


def build_parser() -> argparse.ArgumentParser:
    p = T.Parser(
        prog="alexnet",
        description="AlexNet (NIPS 2012): models, training, evaluation, pretrained weights and analysis.",
        epilog="Errors print one line: exit status 2 for bad input, 1 for a failure at "
        "run time;\n--debug (anywhere) or ALEXNET_DEBUG=1 shows the traceback. docs/cli.md "
        "lists every command.\n\nexample:\n  alexnet predict photo.jpg --weights caffenet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add(p, "--debug", action="store_true", help="show tracebacks instead of one-line errors")
    p.add_argument(
        "--version",
        action="version",
        version=f"alexnet {__version__}",
        help="print the package version and exit",
    )
    add(
        p,
        "--follow-symlinks",
        action="store_true",
        help="in data folders, follow symlinks that leave "
        "the folder (default: skip and count them; or ALEXNET_FOLLOW_SYMLINKS=1)",
    )
    sub = p.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="`alexnet COMMAND --help` shows its options and an example",
    )
    for module in commands():
        module.register(sub)
    return p


def _one_line_warning(command: str):
    """Warnings as one line ("alexnet predict: warning: skipping x.jpg: ..."), without the source
    line Python adds (forked loader workers inherit it)."""

    def fmt(message, category, filename, lineno, line=None):
        # escaped, not folded: a file name with a newline in it stays recognisable (and one line)
        text = shown(str(message).strip()) or category.__name__
        return f"alexnet {command}: warning: {text if len(text) <= 2000 else text[:1997] + '...'}\n"

    return fmt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if hasattr(sys.stdout, "reconfigure"):  # file names that are not UTF-8 print as their bytes, as ls does
        try:
            sys.stdout.reconfigure(errors="surrogateescape")
        except (ValueError, OSError):
            pass
    debug = "--debug" in argv or debug_enabled()
    follow = "--follow-symlinks" in argv  # anywhere, like --debug; read by the data sources
    argv = [a for a in argv if a not in ("--debug", "--follow-symlinks")]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a usage error (one line, status 2), --help or --version (0)
        return e.code if isinstance(e.code, int) else 2
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning(args.command)
    saved = os.environ.get("ALEXNET_FOLLOW_SYMLINKS")
    if follow:
        os.environ["ALEXNET_FOLLOW_SYMLINKS"] = "1"
    try:
        with warnings.catch_warnings():  # the filters as they were, after this command
            warnings.filterwarnings("always", message="skipping")  # every skipped file, not one per line
            for old, new in getattr(args, "renamed", []):
                warnings.warn(
                    f"{old} is deprecated here: it is now {new} ({old} will be removed)",
                    FutureWarning,
                    stacklevel=1,
                )
            return args.func(args)
    except KeyboardInterrupt:
        print(f"alexnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every error becomes one line (2: bad input, 1: run time)
        if debug:  # the traceback too, and the same exit status as without --debug
            traceback.print_exc()
        status, msg = classify(e)
        print(f"alexnet {args.command}: error: {one_line(msg)}", file=sys.stderr)
        return status
    finally:
        warnings.formatwarning = formatwarning
        if follow and saved is None:
            del os.environ["ALEXNET_FOLLOW_SYMLINKS"]
        elif follow:
            os.environ["ALEXNET_FOLLOW_SYMLINKS"] = saved
