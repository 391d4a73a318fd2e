"""Caffe's bvlc_alexnet / bvlc_reference_caffenet weights: the .caffemodel protobuf (current and V1
generations) and caffe-tensorflow's .npy dicts (Guerzhoy's bvlc_alexnet.npy)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import torch
from google.protobuf.message import DecodeError

from ..safe_pickle import safe_loads
from .caffe_pb import V1_TYPES, NetParameter

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def _blob(path: Path, layer: str, b) -> np.ndarray:
    if b.HasField("shape"):
        shape = tuple(b.shape.dim)
    else:  # legacy 4-d num/channels/height/width
        shape = tuple(d for d in (b.num, b.channels, b.height, b.width))
    values = b.data if len(b.data) else b.double_data
    arr = np.asarray(values, dtype=np.float32)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: layer {layer} holds {arr.size} values for a blob of shape {shape} "
                         "(truncated or damaged file?)")
    return arr.reshape(shape)


def read_caffemodel(path: Path) -> tuple[dict[str, list[np.ndarray]], list[str], str]:
    """({layer: [weight, bias]}, layer types in file order, generation 'current' or 'V1')."""
    try:
        net = NetParameter.FromString(path.read_bytes())
    except (DecodeError, RuntimeError) as e:
        raise ValueError(f"{path}: not a Caffe NetParameter: truncated or not a .caffemodel ({e})") from None
    if len(net.layer):
        layers, generation = [(l.name, l.type, l.blobs) for l in net.layer], "current"
    elif len(net.layers):
        layers, generation = [(l.name, V1_TYPES.get(l.type, str(l.type)), l.blobs) for l in net.layers], "V1"
    else:
        raise ValueError(f"{path}: no layers in this .caffemodel")
    blobs = {name: [_blob(path, name, b) for b in bl] for name, _, bl in layers if len(bl)}
    return blobs, [t for _, t, _ in layers], generation


def caffe_variant(types: list[str]) -> str:
    """bvlc_alexnet normalises then pools; CaffeNet pools then normalises."""
    if "LRN" not in types or "Pooling" not in types:
        return "alexnet_caffe"
    return "caffenet" if types.index("Pooling") < types.index("LRN") else "alexnet_caffe"


def read_npy_dict(path: Path) -> dict:
    """A pickled dict saved with np.save (an object array), read with the restricted unpickler:
    the .npy header is parsed here and the payload may only hold arrays and plain containers."""
    data = path.read_bytes()
    if not data.startswith(b"\x93NUMPY") or len(data) < 10:
        raise ValueError(f"{path}: not a .npy file (bad magic)")
    major = data[6]
    hlen_size = 2 if major == 1 else 4
    hlen = int.from_bytes(data[8:8 + hlen_size], "little")
    start = 8 + hlen_size
    try:
        header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    except (ValueError, SyntaxError):
        raise ValueError(f"{path}: damaged .npy header") from None
    if header.get("descr") != "|O":
        raise ValueError(f"{path}: holds a plain array, not the {{layer: [weights, biases]}} dict "
                         "that caffe-tensorflow writes")
    try:
        obj = safe_loads(data[start + hlen:], encoding="latin1")
    except Exception as e:  # UnpicklingError for refused globals, EOFError when truncated
        raise ValueError(f"{path}: refused or unreadable pickle ({type(e).__name__}: {e})") from None
    obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () else obj
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of layers, found {type(obj).__name__}")
    return obj


def npy_to_caffe_layout(d: dict, path: Path) -> dict[str, list[np.ndarray]]:
    """caffe-tensorflow stores conv weights HWIO, fc weights (in, out), and fc6's inputs in
    H x W x C order; Caffe (and torch) use OIHW, (out, in) and C x H x W."""
    out = {}
    for name in LAYERS:
        if name not in d:
            continue
        w, b = (np.asarray(v, dtype=np.float32) for v in d[name][:2])
        if w.ndim == 4:
            w = w.transpose(3, 2, 0, 1)
        elif name == "fc6" and w.shape[0] == 9216:
            w = w.reshape(6, 6, 256, -1).transpose(2, 0, 1, 3).reshape(9216, -1).T
        else:
            w = w.T
        out[name] = [w, b]
    return out


def caffe_state_dict(blobs: dict[str, list[np.ndarray]], model: torch.nn.Module, path: Path) -> dict:
    """Map conv1..fc8 onto features.convN / classifier.fcN, checking every shape."""
    missing = [n for n in LAYERS if n not in blobs]
    if missing:
        raise ValueError(f"{path}: layer(s) {', '.join(missing)} missing (found {', '.join(blobs) or 'none'})")
    state = {}
    own = model.state_dict()
    for name in LAYERS:
        if len(blobs[name]) < 2:
            raise ValueError(f"{path}: layer {name} has no bias blob")
        prefix = "features" if name.startswith("conv") else "classifier"
        for blob, part in zip(blobs[name][:2], ("weight", "bias")):
            key = f"{prefix}.{name}.{part}"
            want = tuple(own[key].shape)
            if blob.size != own[key].numel():
                raise ValueError(f"{path}: {name} {part} has shape {blob.shape}, "
                                 f"{getattr(model, 'name', 'the model')} expects {want}")
            state[key] = torch.from_numpy(np.ascontiguousarray(blob).reshape(want))
    return state
