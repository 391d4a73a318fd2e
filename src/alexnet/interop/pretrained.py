"""`load_pretrained(path or name) -> (model, card)` for every weight format we read (readers.py
has one reader per kind of file), and `save_pretrained` for the ones we write. A name from
`alexnet weights` (torchvision, bvlc_alexnet, caffenet, bvlc_alexnet.npy) is downloaded once and
verified (hub.py). The model is built from the card, on the meta device first, and every key and
shape of the file is checked against it before any memory is spent."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from ..card import Card, default_card, names_for
from ..errors import BadInput
from ..fileio import atomic_write, save_pt
from ..imagenet import imagenet_categories
from ..models import ConvNet, create_model, list_models
from ..untrusted import regular
from . import hub
from .caffe import read_caffe_mean
from .onnx import export_onnx
from .readers import READERS, Weights, meta_model, reader_for, unwrap_keys

FORMATS = tuple(READERS)
__all__ = ["FORMATS", "check_fits", "load_pretrained", "save_pretrained", "unwrap_keys", "with_mean_image"]


def check_fits(model: nn.Module, state: dict, path: Path | str) -> None:
    """Every key and shape of `state` as `model` (which may live on the meta device) has them."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"{path}: does not fit {getattr(model, 'name', 'the model')}: "
            + (f"missing {missing[:4]}{'...' if len(missing) > 4 else ''} " if missing else "")
            + (f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}" if unexpected else "")
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(
                f"{path}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
            )


def _build(path: Path, weights: Weights, model_kw: dict) -> nn.Module:
    """The model the card describes (with `model_kw` overriding its options), its weights loaded."""
    card = weights.card
    kw = {k: v for k, v in card.model_kw.items() if k not in ("seed", "init")} | model_kw
    kw.update(num_classes=card.num_classes, in_channels=card.in_channels)
    meta = meta_model(path, card.model, **kw)
    if not meta.accepts(card.input_size):
        raise BadInput(
            f"{path}: card input_size={card.input_size}, but {card.model} takes sides {meta.sides()}"
        )
    state = weights.state(meta) if callable(weights.state) else weights.state
    check_fits(meta, state, path)
    net = create_model(card.model, **kw)
    net.load_state_dict(weights.state(net) if callable(weights.state) else state, strict=True)
    return net


def with_mean_image(card: Card, mean_file: str | Path) -> Card:
    """Caffe's mean image (imagenet_mean.binaryproto, ilsvrc_2012_mean.npy) as the card's mean: the
    Normalizer crops it where it crops each image, as Caffe's DataTransformer does."""
    bgr = read_caffe_mean(mean_file)
    if bgr.shape[1:] != (card.stored_size, card.stored_size):
        raise ValueError(
            f"--mean {mean_file}: a {bgr.shape[1]}x{bgr.shape[2]} mean image, but these "
            f"weights see images stored at {card.stored_size}x{card.stored_size}"
        )
    card.mean = np.round(bgr[::-1] / 255.0, 7).tolist()  # RGB, [0, 1] units like every card mean
    return card


def load_pretrained(
    path: str | os.PathLike,
    model: str | None = None,
    labels: str | os.PathLike | None = None,
    mean: str | os.PathLike | None = None,
    progress: bool = True,
    *,
    num_classes: int | None = None,
    **model_kw,
) -> tuple[ConvNet, Card]:
    """(model in eval mode, card) from a weights file, or from a name in `alexnet weights`.
    `model` names the architecture where the file does not say (a bare state dict). `labels`
    overrides the category names; 1000-class weights get ImageNet's by default. `mean` gives
    Caffe's mean image file as the preprocessing mean. `num_classes` other than the weights':
    every layer but the last is loaded and a new output layer initialised (reset_classifier;
    0: none, the model returns its fc7 features). `model_kw`: options that keep the shapes
    (dropout, init/seed for the new head). The card is also `model.pretrained_cfg`."""
    entry = None
    if not str(path).strip():  # Path("") would be the current folder
        raise BadInput(
            f"{str(path)!r}: no weights file given; give a file or a name from `alexnet weights` "
            f"({', '.join(hub.WEIGHTS)})"
        )
    if not Path(path).is_file() and str(path) in hub.WEIGHTS:
        entry = hub.WEIGHTS[str(path)]
        path = hub.resolve(str(path), progress=progress)
    path = Path(path)
    if not path.is_file():
        if path.exists():  # a folder, a FIFO, /dev/zero: say what it is (reading it would block or never end)
            regular(path, str(path))
        raise FileNotFoundError(
            f"{path}: no such weights file, nor a name from `alexnet weights` ({', '.join(hub.WEIGHTS)})"
        )
    if model is not None and model not in list_models():
        raise ValueError(f"--model {model!r}: valid names: {', '.join(list_models())}")
    weights = reader_for(path)(path, model)
    card = weights.card
    if entry is not None:
        if card.model != entry.model:
            raise ValueError(f"{path}: holds a {card.model}, but {entry.name} is a {entry.model}")
        card.source = f"{entry.name}: {entry.file} from {entry.urls[0]} ({entry.licence})"
        card.accuracy = dict(entry.accuracy)
    seed, init = model_kw.pop("seed", None), model_kw.pop("init", None)
    net = _build(path, weights, model_kw)
    if mean is not None:
        with_mean_image(card, mean)
    if not card.classes and card.num_classes == 1000:  # ILSVRC-2012's 1000, in the standard order
        card.classes = [name for _, name in imagenet_categories()]
    if num_classes is not None and num_classes != card.num_classes:
        new_head(net, num_classes, init, seed)
        card = replace(card, num_classes=num_classes, classes=[])
    if labels is not None:  # by WordNet id where the card's classes are ids, else line by line
        card.classes = names_for(card, labels)
    net.name, net.pretrained_cfg = card.model, card
    return net.eval(), card


def new_head(net: nn.Module, num_classes: int, init: str | None = None, seed: int | None = None) -> None:
    """net.reset_classifier(num_classes), initialised by `init` (default: the model's scheme) from
    its own seeded stream when `seed` is given (torch's global RNG left as it was)."""
    if init is not None:
        net.init_scheme = init
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        net.reset_classifier(num_classes)


def fitting_card(model: nn.Module) -> Card:
    """The card that describes `model` as it is now: its loaded weights' card (model.pretrained_cfg)
    or its architecture's default, with the model's own head and options."""
    card = getattr(model, "pretrained_cfg", None) or default_card(
        model.name, model.num_classes or None, model.in_channels, getattr(model, "model_kw", {})
    )
    kw = {k: v for k, v in getattr(model, "model_kw", card.model_kw).items() if k not in ("seed", "init")}
    classes = card.classes if len(card.classes) == model.num_classes else []
    return replace(
        card,
        model=model.name,
        num_classes=model.num_classes,
        in_channels=model.in_channels,
        classes=list(classes),
        model_kw=kw,
    )


def _check_card(model: nn.Module, card: Card, state: dict, dst: Path) -> None:
    """`card` describes exactly these weights: the model it names, built as it says, has every key
    and shape of `state`, and takes its input size."""
    if not getattr(model, "num_classes", 1):
        raise BadInput(
            f"{dst}: the model has no output layer (reset_classifier(0)); give it one "
            "(reset_classifier(n)) before saving it as weights"
        )
    card.validate(f"{dst}: the card given")
    try:
        meta = meta_model(
            dst,
            card.model,
            num_classes=card.num_classes,
            in_channels=card.in_channels,
            **{k: v for k, v in card.model_kw.items() if k not in ("seed", "init")},
        )
        check_fits(meta, state, dst)
    except ValueError as e:
        raise BadInput(
            f"{e} (the card does not fit the weights: {card.model}, {card.num_classes} classes, "
            f"{card.in_channels} channels, options {card.model_kw}; save_pretrained(model, dst) "
            "writes the card that fits)"
        ) from None
    if not meta.accepts(card.input_size):
        raise BadInput(
            f"{dst}: card input_size={card.input_size}, but {card.model} takes sides {meta.sides()}"
        )


def save_pretrained(
    model: nn.Module, card: Card | str | os.PathLike | None, dst: str | os.PathLike | None = None
) -> Path:
    """Write `model` to .safetensors (card in the metadata), .pt (our checkpoint layout) or .onnx.
    `save_pretrained(model, dst)` writes the card that fits the model (fitting_card); with a card
    given, one that does not fit the weights (another head, model or option) is refused."""
    if dst is None and not isinstance(card, Card):
        card, dst = None, card
    dst = Path(dst)
    if dst.suffix not in (".safetensors", ".pt", ".onnx"):
        raise ValueError(f"{dst}: unknown output type; expected .safetensors, .pt or .onnx")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if card is None:
        card = fitting_card(model)
    _check_card(model, card, state, dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix == ".safetensors":
        blob = save(state, metadata={"card": card.to_json(), "format": "pt"})
        atomic_write(dst, lambda f: f.write(blob))  # safetensors' save_file writes in place, mode 0600
    elif dst.suffix == ".pt":
        save_pt({"model": state, "card": card.to_dict()}, dst)  # atomic, with a SHA-256
    else:
        export_onnx(model, card, dst)
    return dst
