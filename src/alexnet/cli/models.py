"""`alexnet models`: the model zoo, one line each."""

from __future__ import annotations

from ..models import list_models, model_info
from .options import command


def register(sub) -> None:
    command(
        sub,
        "models",
        "list the model zoo with one-line descriptions",
        "The networks `create_model` builds, by name, each with its one-line description\n"
        "(the paper's net, Caffe's, torchvision's, d2l's, Keras', and CIFAR-10 nets: §3.3's and a\n"
        "stand-in for Fig. 1's).",
        "alexnet models",
        run,
    )


def run(args) -> int:
    width = max(map(len, list_models()))
    for name in list_models():
        print(f"{name:<{width}}  {model_info(name).description}")
    return 0
