"""`alexnet summary`: per-layer output shapes, parameters and multiply-accumulates (§3.5)."""

from __future__ import annotations

import torch

from ..analysis.summary import format_summary, summarize
from ..errors import BadInput
from ..models import create_model
from . import argtypes as T
from .options import add, command


def register(sub) -> None:
    s = command(
        sub,
        "summary",
        "per-layer output shapes, parameters and MACs",
        "Per-layer output shapes, parameter counts and multiply-accumulates of a model (§3.5:\n"
        "60,965,224 parameters for the paper's net).",
        "alexnet summary alexnet",
        run,
    )
    add(s, "model", help="a name from `alexnet models`")
    add(
        s,
        "--input-size",
        type=T.SIDE,
        default=None,
        metavar="N",
        default_text="the model's (227 for alexnet)",
        help="square input side",
    )
    add(
        s,
        "--num-classes",
        type=T.int_in(1, 100_000),
        default=None,
        metavar="N",
        default_text="the model's",
        help="outputs of the last layer",
    )


def run(args) -> int:
    kw = {} if args.num_classes is None else {"num_classes": args.num_classes}
    with torch.device("meta"):  # shapes, parameters and MACs need no memory
        model = create_model(args.model, **kw)
    size = args.input_size or model.input_size
    if not model.accepts(size):
        raise BadInput(
            f"--input-size {size}: {args.model} takes {model.input_size}x{model.input_size} input "
            f"(sides {model.sides()} work)"
        )
    print(format_summary(summarize(model, size), f"{args.model} at {size}x{size}"))
    return 0
