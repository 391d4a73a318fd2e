"""One reader per kind of weights file, chosen from a table by the file's name: each returns the
card (which model, which preprocessing) and the tensors, and builds nothing; load_pretrained
(pretrained.py) builds the model the card names and checks every key and shape against it.

Nothing read from a file is ever executed: protobuf for .caffemodel, a restricted unpickler for
.npy, `torch.load(weights_only=True)` for .pt/.pth/.pth.tar, h5py for Keras files, safetensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..card import Card, caffe_card, keras_card, torchvision_card
from ..errors import BadInput
from ..fileio import check_digest
from ..jsonio import loads
from ..models import create_model
from ..untrusted import torch_load
from .caffe import caffe_state_dict, caffe_variant, npy_to_caffe_layout, read_npy_dict
from .caffe import read_caffemodel as read_caffe_blobs
from .keras import keras_state_dict
from .onnx import read_onnx

# wrappers that prefix parameter names: DataParallel / DistributedDataParallel ("module."), torch.compile
WRAPPERS = ("module", "_orig_mod")
# a state dict, or how to make one for the model the card describes (Caffe's blobs take its shapes)
State = dict | Callable[[nn.Module], dict]


@dataclass
class Weights:
    card: Card
    state: State


def unwrap_keys(state: dict) -> dict:
    """The plain state dict of a model saved inside DataParallel, DDP or torch.compile: every
    "module." / "_orig_mod." path component dropped, wherever it sits (pytorch/examples wraps only
    AlexNet's features: features.module.0.weight)."""
    if not any(p in WRAPPERS for k in state for p in k.split(".")):
        return state
    out = {}
    for k, v in state.items():
        plain = ".".join(p for p in k.split(".") if p not in WRAPPERS)
        if plain in out:
            raise ValueError(f"parameter {plain} appears twice once wrapper prefixes are removed")
        out[plain] = v
    return out


def meta_model(path: Path, name: str, **kw) -> nn.Module:
    """create_model(name, **kw) with shapes only (no memory): a file's claims (a card's 150,000
    classes) are checked against its tensors before anything is allocated."""
    try:
        with torch.device("meta"):
            return create_model(name, **kw)
    except (TypeError, ValueError) as e:  # sizes or options the file gives that no model takes
        raise BadInput(e if str(e).startswith(str(path)) else f"{path}: {e}") from None


def _dim(state: dict, key: str, i: int, path: Path) -> int:
    if state[key].dim() <= i:
        raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}; expected a weight matrix")
    return int(state[key].shape[i])


def card_for_state(state: dict, name: str | None, path: Path) -> Card:
    """The card of a bare state dict: torchvision's AlexNet (features.0.weight ...) or one of ours."""
    if "features.0.weight" in state:
        classes = _dim(state, "classifier.6.weight", 0, path) if "classifier.6.weight" in state else 1000
        return replace(torchvision_card(classes, path.name), model=name or "alexnet_owt")
    if "classifier.fc8.weight" not in state or "features.conv1.weight" not in state:
        raise ValueError(
            f"{path}: neither a torchvision AlexNet nor an alexnet state dict (first keys: {list(state)[:3]})"
        )
    classes = _dim(state, "classifier.fc8.weight", 0, path)
    in_ch = _dim(state, "features.conv1.weight", 1, path)
    conv2 = state.get("features.conv2.weight")
    groups = 2 if conv2 is not None and _dim(state, "features.conv2.weight", 1, path) == 48 else 1
    name = name or "alexnet"
    kw = {"groups": groups} if name != "alexnet_owt" else {}
    size = meta_model(path, name, num_classes=classes, in_channels=in_ch, **kw).input_size
    return Card(
        model=name,
        num_classes=classes,
        input_size=size,
        in_channels=in_ch,
        source=path.name,
        lrn="caffe" if name in ("alexnet_caffe", "caffenet") else "paper",
        model_kw=kw,
    )


def _caffe(blobs: dict, name: str, source: str, path: Path) -> Weights:
    classes = blobs["fc8"][1].size if "fc8" in blobs and len(blobs["fc8"]) > 1 else 1000
    return Weights(caffe_card(name, classes, source), lambda m: caffe_state_dict(blobs, m, path))


def read_caffemodel(path: Path, model: str | None) -> Weights:
    blobs, types, generation = read_caffe_blobs(path)
    return _caffe(blobs, model or caffe_variant(types), f"{path.name} (Caffe, {generation} format)", path)


def read_npy(path: Path, model: str | None) -> Weights:
    blobs = npy_to_caffe_layout(read_npy_dict(path), path)
    return _caffe(blobs, model or "alexnet_caffe", f"{path.name} (caffe-tensorflow)", path)


def _tensors(state, path: Path, what: str) -> dict:
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise BadInput(f"{path}: {what} is not a state dict of tensors")
    return unwrap_keys(state)


def _checkpoint_state(obj, path: Path) -> dict:
    """The state dict inside a torch file: bare, or a training checkpoint such as pytorch/examples'
    {"epoch", "arch", "state_dict", "best_acc1", "optimizer", "scheduler"}."""
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict of tensors, found a {type(obj).__name__}")
    arch = obj.get("arch")
    if isinstance(arch, str) and "alexnet" not in arch.lower():
        raise ValueError(f"{path}: a checkpoint of {arch!r}, not of an AlexNet")
    state = next(
        (obj[k] for k in ("state_dict", "model_state_dict", "model") if isinstance(obj.get(k), dict)), obj
    )
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path}: expected a state dict of tensors (found keys {list(obj)[:5]})")
    return unwrap_keys(state)


def read_torch(path: Path, model: str | None) -> Weights:
    check_digest(path, "weights file", optional=True)  # ours carry a digest: a flipped byte is refused
    obj = torch_load(path, "weights-only torch file")
    if isinstance(obj, dict) and "model" in obj and "card" in obj:  # `alexnet train` / convert
        card = Card.from_dict(obj["card"], str(path))
        return Weights(card, _tensors(obj["model"], path, "its 'model' entry"))
    state = _checkpoint_state(obj, path)
    return Weights(card_for_state(state, model, path), state)


def _check_safetensors_header(path: Path) -> None:
    """The header's length (the first 8 bytes) against the file, before the reader allocates it."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    n = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 2 <= n <= min(size - 8, 100 << 20):
        raise BadInput(
            f"{path}: not a .safetensors file (its header claims {n:,} bytes in a {size:,}-byte file)"
        )


def read_safetensors(path: Path, model: str | None) -> Weights:
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: not a readable .safetensors file ({e})") from None
    if "card" not in meta:
        return Weights(card_for_state(state, model, path), state)
    fields = loads(meta["card"], f"{path}: its metadata 'card'")  # depth-limited, no NaN
    return Weights(Card.from_dict(fields, str(path)), state)


def read_keras(path: Path, model: str | None) -> Weights:
    state, kw, classes, in_ch = keras_state_dict(path)
    return Weights(keras_card(classes, in_ch, f"{path.name} (Keras)", kw), state)


def read_onnx_graph(path: Path, model: str | None) -> Weights:
    """The graphs `alexnet convert` writes: the card in their metadata, the parameters as
    initializers named as the model's (an eval-mode graph drops BatchNorm's step counters,
    which start at 0 again)."""
    card, tensors = read_onnx(path)

    def state(m: nn.Module) -> dict:
        own = m.state_dict()
        missing = [k for k in own if k not in tensors and not k.endswith("num_batches_tracked")]
        if missing:
            raise BadInput(
                f"{path}: its graph does not name every parameter of {card.model} (no "
                f"{', '.join(missing[:3])}): an exporter merged equal weights (torch 2.4's "
                "does); onnxruntime runs it, or convert the original weights again"
            )
        return {k: tensors[k] if k in tensors else torch.zeros((), dtype=torch.long) for k in own}

    return Weights(card, state)


# file kind (how the name ends) -> reader; the longest ending that matches wins (.pth.tar, .weights.h5)
READERS: dict[str, Callable[[Path, str | None], Weights]] = {
    ".caffemodel": read_caffemodel,
    ".npy": read_npy,
    ".pt": read_torch,
    ".pth": read_torch,
    ".pth.tar": read_torch,  # pytorch/examples' model_best.pth.tar
    ".safetensors": read_safetensors,
    ".h5": read_keras,
    ".weights.h5": read_keras,
    ".keras": read_keras,
    ".onnx": read_onnx_graph,  # only the graphs `alexnet convert` writes (with a card)
}


def reader_for(path: Path) -> Callable[[Path, str | None], Weights]:
    name = path.name.lower()
    kinds = [k for k in READERS if name.endswith(k)]
    if not kinds:
        raise ValueError(
            f"{path}: unknown weights type {path.suffix or '(none)'}; expected one of {', '.join(READERS)}"
        )
    return READERS[max(kinds, key=len)]
