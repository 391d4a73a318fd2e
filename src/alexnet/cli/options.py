"""What the commands share: how an option and a command are declared, and the options that
several commands take (--weights, --data, --workers, ...), each declared once here.

Every option's help is one line ending in its default ("... Default: X", as `train --help` prints
its settings), with the paper section where the option follows the paper. docs/cli.md is the
parsers' --help output, regenerated and checked by tests/test_cli_doc.py.
"""

from __future__ import annotations

import argparse

from . import argtypes as T

VALUE_ACTIONS = (None, "store", "append", "extend")  # actions that take a value, so have a default


def with_default(text: str, shown: object) -> str:
    """One help line as every `alexnet` option prints it: "text. Default: X" (% escaped for argparse)."""
    shown = "unset" if shown in (None, "") else shown
    return f"{text}. Default: {shown}".replace("%", "%%")


def add(p, *flags: str, help: str, default_text: str | None = None, **kw) -> argparse.Action:
    """add_argument, with "Default: X" appended to the help of every optional option that takes a
    value (X: `default_text`, else the default itself), so that no default is written twice;
    "(required)" to the required ones."""
    if kw.get("required"):
        help = f"{help} (required)".replace("%", "%%")
    elif flags[0].startswith("-") and kw.get("action") in VALUE_ACTIONS:
        default = kw.get("default")
        shown = (
            default_text
            if default_text is not None
            else " ".join(map(str, default))
            if isinstance(default, list)
            else default
        )
        help = with_default(help, shown)
    else:
        help = help.replace("%", "%%")
    return p.add_argument(*flags, help=help, **kw)


def command(sub, name: str, help: str, description: str, example: str, run=None) -> argparse.ArgumentParser:
    """A subcommand's parser: its line in the parent's list, a description and one example;
    `run(args) -> exit status` handles it."""
    s = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if run is not None:
        s.set_defaults(func=run)
    return s


# ---- the options several commands take: a command changes a default or the help where it must --
WEIGHTS = (
    "a name from `alexnet weights`, a checkpoint of `alexnet train`, or a weights file: .caffemodel, "
    ".npy, .pth/.pt/.pth.tar, .safetensors, Keras .h5/.weights.h5/.keras"
)
DATA = "a folder (<class>/*.jpg, train/ + val/), a .tar, shards, or a dataset name"
CROPS = "center, or 10: four corners + centre and their mirrors, softmax averaged (§4.1)"


def _add(p, flag: str, spec: dict, changes: dict) -> argparse.Action:
    return add(p, flag, **{**spec, **changes})


def weights(p, **changes) -> argparse.Action:
    return _add(p, "--weights", dict(required=True, metavar="WEIGHTS", help=WEIGHTS), changes)


def data(p, **changes) -> argparse.Action:
    return _add(p, "--data", dict(required=True, metavar="DATA", help=DATA), changes)


def split(p, default: str, **changes) -> argparse.Action:
    return _add(
        p,
        "--split",
        dict(
            default=default,
            help="the split to read: train, val or test (val finds a validation/ or test/ split too)",
        ),
        changes,
    )


def data_labels(p, **changes) -> argparse.Action:
    """--labels of a dataset: which class each file of a flat folder is."""
    return _add(
        p,
        "--labels",
        dict(
            default=None,
            metavar="FILE",
            default_text="labels from <class>/ folders",
            help="labels file (<file> <label> per line) for a flat folder",
        ),
        changes,
    )


def class_names(p, **changes) -> argparse.Action:
    """--class-names of a network: the names of its outputs (--labels, its old name, still works
    with a deprecation line: --labels is a dataset's labels file in the other commands)."""
    p.add_argument(
        "--labels",
        dest="class_names",
        action=Renamed,
        new="--class-names",
        default=None,
        help=argparse.SUPPRESS,
    )
    names = "the card's names, or ImageNet's for 1000-class weights"
    return _add(
        p,
        "--class-names",
        dict(
            default=None,
            metavar="FILE",
            default_text=names,
            help="class names: synset_words.txt or imagenet_class_index.json "
            "(the net's classes picked by WordNet id when it has them)",
        ),
        changes,
    )


class Renamed(argparse.Action):
    """An option's old name: it still works, and the command warns once that it is deprecated
    (cli/__init__.py, where warnings are one line)."""

    def __init__(self, option_strings, dest, new: str, **kw):
        super().__init__(option_strings, dest, **kw)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.renamed = [*getattr(namespace, "renamed", []), (option_string, self.new)]


def model(p, **changes) -> argparse.Action:
    return _add(
        p,
        "--model",
        dict(
            default=None,
            metavar="NAME",
            default_text="what the file says, or guessed from its shapes",
            help="model name from `alexnet models` when the file does not say",
        ),
        changes,
    )


def batch_size(p, default: int, **changes) -> argparse.Action:
    return _add(
        p, "--batch-size", dict(type=T.BATCH, default=default, metavar="N", help="images per batch"), changes
    )


WORKERS_AUTO = (
    "data-loading processes; auto: on CUDA the cores left beside the main process, on CPU "
    "one per core up to 4 (alexnet.data.resolve_workers)"
)


def workers(p, auto: bool = False) -> argparse.Action:
    """--workers; auto=True for the commands whose loader feeds a device (train, evaluate, bench data)."""
    if auto:
        return add(p, "--workers", type=T.workers_or_auto, default="auto", metavar="N", help=WORKERS_AUTO)
    return add(p, "--workers", type=T.WORKERS, default=2, metavar="N", help="data-loading processes")


def device(p) -> argparse.Action:
    return add(p, "--device", default="cpu", help="cpu, cuda or cuda:N")


def crops(p) -> argparse.Action:
    return add(p, "--crops", choices=["center", "10"], default="center", help=CROPS)


def quiet(p) -> argparse.Action:
    return add(p, "--quiet", action="store_true", help="no progress bars")
