"""`load_pretrained(path or name) -> (model, card)` for every weight format we read, chosen by file
type, and `save_pretrained` for the ones we write. A name from `alexnet weights` (torchvision,
bvlc_alexnet, caffenet, bvlc_alexnet.npy) is downloaded once and verified (hub.py). Nothing read
from a file is ever executed: protobuf for .caffemodel, a restricted unpickler for .npy,
`torch.load(weights_only=True)` for .pt/.pth/.pth.tar, h5py for Keras files, and safetensors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..card import Card, caffe_card, read_labels, torchvision_card
from ..errors import BadInput
from ..imagenet import imagenet_categories
from ..jsonio import loads
from ..models import create_model, list_models
from ..untrusted import regular, torch_load
from .caffe import (
    caffe_state_dict,
    caffe_variant,
    npy_to_caffe_layout,
    read_caffe_mean,
    read_caffemodel,
    read_npy_dict,
)

FORMATS = (".caffemodel", ".npy", ".pt", ".pth", ".pth.tar", ".safetensors", ".h5", ".weights.h5", ".keras")
# wrappers that prefix parameter names: DataParallel / DistributedDataParallel ("module."), torch.compile
WRAPPERS = ("module", "_orig_mod")


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


def _load_strict(model: nn.Module, state: dict, path: Path) -> None:
    check_fits(model, state, path)
    model.load_state_dict(state, strict=True)


def check_fits(model: nn.Module, state: dict, path: Path) -> None:
    """Every key and shape of `state` as `model` (which may live on the meta device) has them."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit {getattr(model, 'name', 'the model')}: "
                         + (f"missing {missing[:4]}{'...' if len(missing) > 4 else ''} " if missing else "")
                         + (f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}"
                            if unexpected else ""))
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, the model expects "
                             f"{tuple(own[k].shape)}")


def _build_checked(path: Path, check, name: str, **kw) -> nn.Module:
    """create_model(name, **kw) once `check(meta_model)` has passed on a model of shapes only: a
    file's claims (a card's 150,000 classes) are compared with its tensors before any memory is
    spent on them."""
    try:
        with torch.device("meta"):
            meta = create_model(name, **kw)
    except (TypeError, ValueError) as e:  # sizes or options the file gives that no model takes
        raise BadInput(e if str(e).startswith(str(path)) else f"{path}: {e}") from None
    check(meta)
    return create_model(name, **kw)


def _model_for_state(state: dict, name: str | None, path: Path) -> tuple[nn.Module, Card]:
    """A bare state dict: torchvision's AlexNet (features.0.weight ...) or one of ours."""
    fits = lambda m: check_fits(m, state, path)  # noqa: E731
    if "features.0.weight" in state:
        classes = _dim(state, "classifier.6.weight", 0, path) if "classifier.6.weight" in state else 1000
        model = _build_checked(path, fits, name or "alexnet_owt", num_classes=classes)
        return model, torchvision_card(classes, path.name)
    if "classifier.fc8.weight" not in state or "features.conv1.weight" not in state:
        raise ValueError(f"{path}: neither a torchvision AlexNet nor an alexnet state dict "
                         f"(first keys: {list(state)[:3]})")
    classes = _dim(state, "classifier.fc8.weight", 0, path)
    in_ch = _dim(state, "features.conv1.weight", 1, path)
    towers = "features.conv2.weight" in state and _dim(state, "features.conv2.weight", 1, path) == 48
    groups = 2 if towers else 1
    model = _build_checked(path, fits, name or "alexnet", num_classes=classes, in_channels=in_ch,
                           groups=groups)
    card = Card(model.name, classes, model.input_size, in_ch, source=path.name,
                lrn="caffe" if model.name in ("alexnet_caffe", "caffenet") else "paper",
                model_kw={"groups": groups} if model.name != "alexnet_owt" else {})
    return model, card


def _dim(state: dict, key: str, i: int, path: Path) -> int:
    if state[key].dim() <= i:
        raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}; expected a weight matrix")
    return int(state[key].shape[i])


def _from_card(card: Card, state: dict, path: Path) -> nn.Module:
    kw = {k: v for k, v in card.model_kw.items() if k not in ("seed", "init")}

    def check(m):
        if not m.accepts(card.input_size):
            raise BadInput(f"{path}: card input_size={card.input_size}, but {card.model} takes sides "
                           f"{m.sides()}")
        check_fits(m, state, path)
    model = _build_checked(path, check, card.model, num_classes=card.num_classes,
                           in_channels=card.in_channels, **kw)
    model.load_state_dict(state, strict=True)
    return model


def _checkpoint_state(obj, path: Path) -> dict:
    """The state dict inside a torch file: bare, or a training checkpoint such as pytorch/examples'
    {"epoch", "arch", "state_dict", "best_acc1", "optimizer", "scheduler"}."""
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict of tensors, found a {type(obj).__name__}")
    arch = obj.get("arch")
    if isinstance(arch, str) and "alexnet" not in arch.lower():
        raise ValueError(f"{path}: a checkpoint of {arch!r}, not of an AlexNet")
    state = next((obj[k] for k in ("state_dict", "model_state_dict", "model")
                  if isinstance(obj.get(k), dict)), obj)
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path}: expected a state dict of tensors (found keys {list(obj)[:5]})")
    return unwrap_keys(state)


def _check_safetensors_header(path: Path) -> None:
    """The header's length (the first 8 bytes) against the file, before the reader allocates it."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    n = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 2 <= n <= min(size - 8, 100 << 20):
        raise BadInput(f"{path}: not a .safetensors file (its header claims {n:,} bytes in a "
                       f"{size:,}-byte file)")


def keras_card(classes: int, in_ch: int, source: str, model_kw: dict) -> Card:
    """The Keras tutorials feed RGB pixels scaled to [0, 1] (ImageDataGenerator(rescale=1/255))
    with no mean subtraction; edit the card if your network was trained otherwise."""
    return Card("alexnet_bn", classes, 227, in_ch, mean=[0.0] * in_ch, std=None, pixel_scale=1.0,
                lrn=None, source=source, model_kw=model_kw)


def with_mean_image(card: Card, mean_file: str | Path) -> Card:
    """Caffe's mean image (imagenet_mean.binaryproto, ilsvrc_2012_mean.npy) as the card's mean: the
    Normalizer crops it where it crops each image, as Caffe's DataTransformer does."""
    bgr = read_caffe_mean(mean_file)
    if bgr.shape[1:] != (card.stored_size, card.stored_size):
        raise ValueError(f"--mean {mean_file}: a {bgr.shape[1]}x{bgr.shape[2]} mean image, but these "
                         f"weights see images stored at {card.stored_size}x{card.stored_size}")
    card.mean = np.round(bgr[::-1] / 255.0, 7).tolist()  # RGB, [0, 1] units like every card mean
    return card


def load_pretrained(path: str | Path, model: str | None = None, labels: str | Path | None = None,
                    mean: str | Path | None = None, progress: bool = True) -> tuple[nn.Module, Card]:
    """(model in eval mode, card) from a weights file, or from a name in `alexnet weights`.
    `labels` overrides the category names; 1000-class weights get ImageNet's by default.
    `mean` gives Caffe's mean image file as the preprocessing mean."""
    from . import hub

    entry = None
    if not str(path).strip():  # Path("") would be the current folder
        raise BadInput(f"{str(path)!r}: no weights file given; give a file or a name from `alexnet weights` "
                       f"({', '.join(hub.WEIGHTS)})")
    if not Path(path).is_file() and str(path) in hub.WEIGHTS:
        entry = hub.WEIGHTS[str(path)]
        path = hub.resolve(str(path), progress=progress)
    path = Path(path)
    if not path.is_file():
        if path.exists():  # a folder, a FIFO, /dev/zero: say what it is (reading it would block or never end)
            regular(path, str(path))
        raise FileNotFoundError(f"{path}: no such weights file, nor a name from `alexnet weights` "
                                f"({', '.join(hub.WEIGHTS)})")
    if model is not None and model not in list_models():
        raise ValueError(f"--model {model!r}: valid names: {', '.join(list_models())}")
    suffix = path.suffix.lower()
    if path.name.lower().endswith(".pth.tar"):  # pytorch/examples' checkpoint.pth.tar, model_best.pth.tar
        suffix = ".pth"
    if suffix in (".caffemodel", ".npy"):
        if suffix == ".caffemodel":
            blobs, types, generation = read_caffemodel(path)
            name, source = model or caffe_variant(types), f"{path.name} (Caffe, {generation} format)"
        else:
            blobs = npy_to_caffe_layout(read_npy_dict(path), path)
            name, source = model or "alexnet_caffe", f"{path.name} (caffe-tensorflow)"
        classes = blobs["fc8"][1].size if "fc8" in blobs and len(blobs["fc8"]) > 1 else 1000
        net = _build_checked(path, lambda m: caffe_state_dict(blobs, m, path), name, num_classes=classes)
        net.load_state_dict(caffe_state_dict(blobs, net, path))
        card = caffe_card(name, classes, source)
    elif suffix in (".pt", ".pth"):
        from ..fileio import check_digest

        check_digest(path, "weights file", optional=True)  # ours carry a digest: a flipped byte is refused
        obj = torch_load(path, "weights-only torch file")
        if isinstance(obj, dict) and "model" in obj and "card" in obj:  # `alexnet train` / convert
            card = Card.from_dict(obj["card"], str(path))
            state = obj["model"]
            if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                      for k, v in state.items()):
                raise BadInput(f"{path}: its 'model' entry is not a state dict of tensors")
            net = _from_card(card, unwrap_keys(state), path)
        else:
            state = _checkpoint_state(obj, path)
            net, card = _model_for_state(state, model, path)
            _load_strict(net, state, path)
    elif suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        _check_safetensors_header(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{path}: not a readable .safetensors file ({e})") from None
        if "card" in meta:
            fields = loads(meta["card"], f"{path}: its metadata 'card'")
            card = Card.from_dict(fields, str(path))
            net = _from_card(card, state, path)
        else:
            net, card = _model_for_state(state, model, path)
            _load_strict(net, state, path)
    elif suffix in (".h5", ".keras"):
        from .keras import keras_state_dict

        state, kw, classes, in_ch = keras_state_dict(path)
        card = keras_card(classes, in_ch, f"{path.name} (Keras)", kw)
        net = _from_card(card, state, path)
    else:
        raise ValueError(f"{path}: unknown weights type {suffix or '(none)'}; expected one of "
                         f"{', '.join(FORMATS)}")
    if entry is not None:
        if card.model != entry.model:
            raise ValueError(f"{path}: holds a {card.model}, but {entry.name} is a {entry.model}")
        card.source = f"{entry.name}: {entry.file} from {entry.urls[0]} ({entry.licence})"
        card.accuracy = dict(entry.accuracy)
    if mean is not None:
        with_mean_image(card, mean)
    if not card.classes and card.num_classes == 1000:  # ILSVRC-2012's 1000, in the standard order
        card.classes = [name for _, name in imagenet_categories()]
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
        from safetensors.torch import save

        from ..fileio import atomic_write  # (safetensors' save_file writes in place, mode 0600)

        blob = save(state, metadata={"card": card.to_json(), "format": "pt"})
        atomic_write(dst, lambda f: f.write(blob))
    elif dst.suffix == ".pt":
        from ..fileio import save_pt

        save_pt({"model": state, "card": card.to_dict()}, dst)  # atomic, with a SHA-256
    elif dst.suffix == ".onnx":
        from .onnx import export_onnx

        export_onnx(model, card, dst)
    else:
        raise ValueError(f"{dst}: unknown output type; expected .safetensors, .pt or .onnx")
    return dst
