"""`alexnet.create_model`, spelled as timm spells it: an architecture by name, its published
weights with `pretrained=True`, a new head with `num_classes`, another input depth with `in_chans`,
the trunk's stage maps with `features_only=True`."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import replace
from typing import Literal, overload

import torch
from torch import nn

from ..errors import BadInput
from ..models import ConvNet, FeatureNet, list_models, model_info, model_table
from ..models import create_model as build_model
from ..models.init import INITS
from .hub import WEIGHTS
from .pretrained import load_pretrained

NO_WEIGHTS = {
    "alexnet": "nobody published weights of the paper's two-GPU network; train it (`alexnet train "
    "--preset paper`), or take its closest published relatives: alexnet_caffe, caffenet "
    "(Caffe) or alexnet_owt (torchvision), each with pretrained=True"
}


def list_pretrained(filter: str = "") -> list[str]:
    """Published weights as timm names them, "<model>.<weights>" (`alexnet_owt.torchvision`, ...),
    matching a shell pattern; `create_model("alexnet_caffe.bvlc_alexnet.npy", pretrained=True)`."""
    names = sorted(f"{e.model}.{e.name}" for e in WEIGHTS.values())
    return [n for n in names if not filter or fnmatch.fnmatchcase(n, filter)]


def _weights_for(arch: str, tag: str | None, pretrained) -> str | os.PathLike | None:
    """What to load: the architecture's default weights, a tag's, a name or a file; None for none."""
    if pretrained is False or pretrained is None:
        return None
    if pretrained is True:
        weights = tag or model_info(arch).weights
        if weights is None:
            others = "models with weights: " + ", ".join(list_models(pretrained=True))
            raise BadInput(f"{arch}: no pretrained weights: " + NO_WEIGHTS.get(arch, others))
        return weights
    if isinstance(pretrained, (str, os.PathLike)):
        return pretrained
    raise TypeError(
        f"pretrained must be True/False, a weights name ({', '.join(WEIGHTS)}) or a file, "
        f"got {type(pretrained).__name__}"
    )


def adapt_input_conv(net: ConvNet, in_chans: int) -> None:
    """Pretrained RGB kernels for `in_chans` input channels, as timm adapts them: summed for one
    (a grey image then gives the response its RGB copy would), else repeated and scaled by 3/in_chans."""
    conv = next(m for m in net.features.modules() if isinstance(m, nn.Conv2d))
    w = conv.weight.detach()
    if in_chans == 1:
        w = w.sum(1, keepdim=True)
    else:
        w = w.repeat(1, -(-in_chans // w.shape[1]), 1, 1)[:, :in_chans] * (w.shape[1] / in_chans)
    conv.weight = nn.Parameter(w.contiguous(), requires_grad=conv.weight.requires_grad)
    conv.in_channels = net.in_channels = in_chans


def _card_for_channels(card, in_chans: int):
    """The card's mean/std averaged over its channels, repeated for `in_chans`."""
    mean = torch.tensor(card.mean, dtype=torch.float64)
    mean = mean.mean(0, keepdim=True).expand(in_chans, *mean.shape[1:])
    std = None if card.std is None else [round(sum(card.std) / len(card.std), 7)] * in_chans
    return replace(card, in_channels=in_chans, mean=mean.tolist(), std=std)


@overload
def create_model(
    name: str,
    *,
    pretrained: bool | str | os.PathLike = ...,
    num_classes: int | None = ...,
    in_chans: int | None = ...,
    features_only: Literal[False] = ...,
    out_indices: None = ...,
    checkpoint_path: str | os.PathLike | None = ...,
    **model_kw,
) -> ConvNet: ...
@overload
def create_model(
    name: str,
    *,
    pretrained: bool | str | os.PathLike = ...,
    num_classes: int | None = ...,
    in_chans: int | None = ...,
    features_only: Literal[True],
    out_indices=...,
    checkpoint_path: str | os.PathLike | None = ...,
    **model_kw,
) -> FeatureNet: ...
def create_model(
    name: str,
    *,
    pretrained: bool | str | os.PathLike = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    features_only: bool = False,
    out_indices=None,
    checkpoint_path: str | os.PathLike | None = None,
    **model_kw,
) -> ConvNet | FeatureNet:
    """A network of the zoo, as timm's create_model builds one.

    name: a model below, or "<model>.<weights>" (list_pretrained()) to pick the weights
        pretrained=True loads.
    pretrained: True loads the model's published weights (downloaded once and verified); a string
        names weights (`alexnet weights`) or a file of any format load_pretrained reads.
    num_classes: the output layer's size; where it differs from the weights', every other layer is
        loaded and a new output layer initialised by the model's init scheme (0: no output layer,
        the model returns its fc7 features).
    in_chans: input channels (pretrained conv1 kernels are summed for 1, as timm does).
    features_only: a FeatureNet returning the map of each stage in `out_indices` (default: all),
        with `feature_info` (num_chs, reduction, module) as timm's.
    checkpoint_path: a file of our own (or any format) loaded strictly into the model built.
    model_kw: the model's options below, plus init= (one of INITS) and seed=.

    A loaded model carries its card as `model.pretrained_cfg`: resolve_data_config(model) and
    `model.pretrained_cfg.transforms()` give its preprocessing.

    Models and options:
    """
    alias = model_kw.pop("in_channels", None)  # the zoo's own name for in_chans
    in_chans = alias if in_chans is None else in_chans
    arch, tag = name, None
    if name not in list_models() and "." in name:
        arch, tag = name.split(".", 1)
        if tag not in WEIGHTS or WEIGHTS[tag].model != arch:
            raise ValueError(f"unknown pretrained name {name!r}; valid: {', '.join(list_pretrained())}")
    model_info(arch)  # an unknown name: a ValueError listing the valid ones
    if checkpoint_path is not None and pretrained not in (False, None):
        raise ValueError(f"{name}: give pretrained= or checkpoint_path=, not both")
    weights = _weights_for(arch, tag, pretrained) if checkpoint_path is None else checkpoint_path
    if weights is None:
        net = build_model(arch, num_classes=num_classes, in_channels=in_chans, **model_kw)
    else:
        net, card = load_pretrained(
            weights, arch, num_classes=num_classes if checkpoint_path is None else None, **model_kw
        )
        if card.model != arch:
            raise BadInput(f"{weights}: holds a {card.model}, not a {arch}")
        if checkpoint_path is not None and num_classes is not None and num_classes != card.num_classes:
            raise BadInput(
                f"{checkpoint_path}: a {card.num_classes}-class network, "
                f"num_classes={num_classes} asked (pretrained= loads all but the output layer)"
            )
        if in_chans is not None and in_chans != card.in_channels:
            adapt_input_conv(net, in_chans)
            net.pretrained_cfg = _card_for_channels(card, in_chans)
        net.train()  # as timm and torchvision return it; load_pretrained's is in eval mode
    if features_only:
        cfg = getattr(net, "pretrained_cfg", None)
        net = FeatureNet(net, out_indices)
        if cfg is not None:
            net.pretrained_cfg = cfg
    elif out_indices is not None:
        raise ValueError(f"{name}: out_indices needs features_only=True")
    return net


create_model.__doc__ = create_model.__doc__.replace("one of INITS", ", ".join(INITS)) + "\n" + model_table()
