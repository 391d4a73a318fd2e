"""`load_pretrained(path) -> (model, card)` for every weight format we read, chosen by file type,
and `save_pretrained` for the ones we write. Nothing read from a file is ever executed: protobuf
for .caffemodel, a restricted unpickler for .npy, `torch.load(weights_only=True)` for .pt/.pth,
and safetensors."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..card import Card, caffe_card, read_labels, torchvision_card
from ..models import create_model, list_models
from .caffe import caffe_state_dict, caffe_variant, npy_to_caffe_layout, read_caffemodel, read_npy_dict

FORMATS = (".caffemodel", ".npy", ".pt", ".pth", ".safetensors")


def _load_strict(model: nn.Module, state: dict, path: Path) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit {getattr(model, 'name', 'the model')}: "
                         + (f"missing {missing[:4]}{'...' if len(missing) > 4 else ''} " if missing else "")
                         + (f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}" if unexpected else ""))
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
    model.load_state_dict(state, strict=True)


def _model_for_state(state: dict, name: str | None, path: Path) -> tuple[nn.Module, Card]:
    """A bare state dict: torchvision's AlexNet (features.0.weight ...) or one of ours."""
    if "features.0.weight" in state:
        classes = state["classifier.6.weight"].shape[0] if "classifier.6.weight" in state else 1000
        model = create_model(name or "alexnet_owt", num_classes=classes)
        return model, torchvision_card(classes, path.name)
    if "classifier.fc8.weight" not in state or "features.conv1.weight" not in state:
        raise ValueError(f"{path}: neither a torchvision AlexNet nor an alexnet state dict "
                         f"(first keys: {list(state)[:3]})")
    classes = state["classifier.fc8.weight"].shape[0]
    in_ch = state["features.conv1.weight"].shape[1]
    groups = 2 if state["features.conv2.weight"].shape[1] == 48 else 1
    model = create_model(name or "alexnet", num_classes=classes, in_channels=in_ch, groups=groups)
    card = Card(model.name, classes, model.input_size, in_ch, source=path.name,
                lrn="caffe" if model.name in ("alexnet_caffe", "caffenet") else "paper",
                model_kw={"groups": groups} if model.name != "alexnet_owt" else {})
    return model, card


def _from_card(card: Card, state: dict, path: Path) -> nn.Module:
    kw = {k: v for k, v in card.model_kw.items() if k not in ("seed", "init")}
    model = create_model(card.model, num_classes=card.num_classes, in_channels=card.in_channels, **kw)
    _load_strict(model, state, path)
    return model


def load_pretrained(path: str | Path, model: str | None = None,
                    labels: str | Path | None = None) -> tuple[nn.Module, Card]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    if model is not None and model not in list_models():
        raise ValueError(f"--model {model!r}: valid names: {', '.join(list_models())}")
    suffix = path.suffix.lower()
    if suffix in (".caffemodel", ".npy"):
        if suffix == ".caffemodel":
            blobs, types, generation = read_caffemodel(path)
            name, source = model or caffe_variant(types), f"{path.name} (Caffe, {generation} format)"
        else:
            blobs = npy_to_caffe_layout(read_npy_dict(path), path)
            name, source = model or "alexnet_caffe", f"{path.name} (caffe-tensorflow)"
        classes = blobs["fc8"][1].size if "fc8" in blobs else 1000
        net = create_model(name, num_classes=classes)
        net.load_state_dict(caffe_state_dict(blobs, net, path))
        card = caffe_card(name, classes, source)
    elif suffix in (".pt", ".pth"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{path}: not a readable weights-only torch file ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200]})") from None
        if isinstance(obj, dict) and "model" in obj and "card" in obj:  # `alexnet train` / convert
            card = Card.from_dict(obj["card"])
            net = _from_card(card, obj["model"], path)
        else:
            state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise ValueError(f"{path}: expected a state dict of tensors")
            net, card = _model_for_state(state, model, path)
            _load_strict(net, state, path)
    elif suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{path}: not a readable .safetensors file ({e})") from None
        if "card" in meta:
            card = Card.from_dict(json.loads(meta["card"]))
            net = _from_card(card, state, path)
        else:
            net, card = _model_for_state(state, model, path)
            _load_strict(net, state, path)
    else:
        raise ValueError(f"{path}: unknown weights type {suffix or '(none)'}; expected one of {', '.join(FORMATS)}")
    if labels is not None:
        names = read_labels(labels)
        if len(names) != card.num_classes:
            raise ValueError(f"--labels {labels}: {len(names)} names for a {card.num_classes}-class network")
        card.classes = names
    net.name = card.model
    return net.eval(), card


def save_pretrained(model: nn.Module, card: Card, dst: str | Path) -> Path:
    """.safetensors (card in the metadata), .pt (our checkpoint layout), or .onnx."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dst.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(dst), metadata={"card": card.to_json(), "format": "pt"})
    elif dst.suffix == ".pt":
        torch.save({"model": state, "card": card.to_dict()}, dst)
    elif dst.suffix == ".onnx":
        from .onnx import export_onnx

        export_onnx(model, card, dst)
    else:
        raise ValueError(f"{dst}: unknown output type; expected .safetensors, .pt or .onnx")
    return dst
