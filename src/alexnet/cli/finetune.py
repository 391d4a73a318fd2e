"""`alexnet finetune`: `train` from pretrained weights, with a new last layer (training/finetune.py).

The options are train's, but for the four settings that the weights and the layer options
decide (init_from, train_layers, lr_mult, model).
"""

from __future__ import annotations

from ..errors import BadInput
from ..interop.pretrained import load_pretrained
from ..training.recipes import FINETUNE
from . import argtypes as T
from . import train
from .options import add, command, weights

DECIDED = ("init_from", "train_layers", "lr_mult", "model")  # settings that are not flags here


def register(sub) -> None:
    s = command(
        sub,
        "finetune",
        "transfer learning from pretrained weights to a new folder",
        "Start from pretrained weights, replace the last layer (fc8) with one for the new data's\n"
        "classes, and train the chosen layers; the data is decoded as the weights expect.",
        "alexnet finetune --weights caffenet --data /path/to/flowers --train-layers fc6,fc7,fc8 "
        "--lr-mult fc8=10 --run-dir runs/flowers",
        run,
    )
    g = s.add_argument_group("what to start from and what to train")
    weights(
        g,
        required=False,
        default=None,
        default_text="required, except with --resume",
        help="the pretrained weights to start from (--resume: the run's own): a name from `alexnet "
        "weights`, a checkpoint or a weights file",
    )
    layers = g.add_mutually_exclusive_group()
    add(
        layers,
        "--train-layers",
        default=None,
        metavar="LAYERS",
        default_text=FINETUNE["train_layers"],
        help="comma-separated layers to train, e.g. fc6,fc7,fc8; the rest stay frozen (the new fc8 always "
        "trains)",
    )
    add(layers, "--all", action="store_true", help="train every layer")
    add(
        g,
        "--lr-mult",
        nargs="+",
        type=T.name_number,
        default=None,
        metavar="NAME=X",
        default_text=f"{FINETUNE['head_lr_mult']:g} for the new output layer, 1 for the others",
        help="per-layer learning-rate multipliers, e.g. fc8=10 conv1=0.1; the learning rate itself is the "
        f"recipe's x {FINETUNE['lr_factor']:g} unless --lr is given (docs/analysis.md measures these)",
    )
    train.recipe_options(s, "the pretrained model's recipe")
    train.invocation_options(s)
    train.setting_options(s, skip=DECIDED)


def run(args) -> int:
    settings = train.settings(args)
    if args.resume:  # the checkpoint holds the weights, layers and multipliers of the run
        if args.train_layers or args.all or args.lr_mult:
            raise BadInput(
                "--resume keeps the run's recipe; --train-layers, --all and --lr-mult cannot be given with it"
            )
        return train.start(args, settings, weights=args.weights)  # must be the run's own (checked by resume)
    if not args.weights:
        raise BadInput("--weights: required (the pretrained weights to start from), unless --resume RUN")
    _, card = load_pretrained(args.weights)  # the new data is decoded as the weights expect
    settings.setdefault("resize", card.resize or card.input_size)
    settings.update(init_from=args.weights, model=card.model)
    if args.train_layers or args.all:  # otherwise finetune's default (training/recipes.py FINETUNE)
        settings["train_layers"] = args.train_layers or "all"
    if args.lr_mult:
        settings["lr_mult"] = dict(args.lr_mult)
    return train.start(args, settings)
