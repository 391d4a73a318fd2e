"""Caffe's bvlc_alexnet / bvlc_reference_caffenet weights: the .caffemodel protobuf (current and V1
generations), caffe-tensorflow's .npy dicts (Guerzhoy's bvlc_alexnet.npy: {layer: [weights,
biases]}; later caffe-tensorflow: {layer: {"weights": ..., "biases": ...}}), fine-tuned nets whose
layers were renamed (fc8_flickr, fc-rcnn), and Caffe's mean image (.binaryproto / .npy)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from google.protobuf.message import DecodeError

from ..errors import BadInput
from ..safe_pickle import safe_loads
from ..untrusted import load_npy, npy_header, regular
from .caffe_pb import MESSAGES, V1_TYPES, NetParameter

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def _blob(path: Path, layer: str, b) -> np.ndarray:
    if b.HasField("shape"):
        shape = tuple(b.shape.dim)
    else:  # legacy 4-d num/channels/height/width
        shape = tuple(d for d in (b.num, b.channels, b.height, b.width))
    if len(shape) > 8 or any(d < 0 for d in shape):
        raise ValueError(f"{path}: layer {layer} has a blob of shape {shape[:10]}: not a weight blob")
    values = b.data if len(b.data) else b.double_data
    if len(values) != math.prod(shape):  # checked before copying: the count is the file's own
        raise ValueError(
            f"{path}: layer {layer} holds {len(values)} values for a blob of shape {shape} "
            "(truncated or damaged file?)"
        )
    arr = np.asarray(values, dtype=np.float32)
    if arr.size != math.prod(shape):
        raise ValueError(
            f"{path}: layer {layer} holds {arr.size} values for a blob of shape {shape} "
            "(truncated or damaged file?)"
        )
    return arr.reshape(shape)


def read_caffemodel(path: Path) -> tuple[dict[str, list[np.ndarray]], list[tuple[str, str]], str]:
    """({layer: [weight, bias]}, (name, type) of every layer in file order, generation
    'current' or 'V1'), with conv1..fc8 named by position (see assign_roles)."""
    try:
        net = NetParameter.FromString(path.read_bytes())
    except (DecodeError, RuntimeError) as e:
        raise ValueError(f"{path}: not a Caffe NetParameter: truncated or not a .caffemodel ({e})") from None
    if len(net.layer):
        layers, generation = [(x.name, x.type, x.blobs) for x in net.layer], "current"
    elif len(net.layers):
        layers, generation = [(x.name, V1_TYPES.get(x.type, str(x.type)), x.blobs) for x in net.layers], "V1"
    else:
        raise ValueError(f"{path}: no layers in this .caffemodel")
    blobs = {name: [_blob(path, name, b) for b in bl] for name, _, bl in layers if len(bl)}
    kinds = {name: t for name, t, _ in layers}
    return assign_roles(blobs, kinds, path), [(n, t) for n, t, _ in layers], generation


def assign_roles(blobs: dict, kinds: dict[str, str] | None, path: Path) -> dict:
    """conv1..fc8 for a net whose layers may have been renamed for fine-tuning (fc8_flickr,
    fc-rcnn). With layer types (a .caffemodel) the 5 convolutions and 3 inner products are taken
    in file order; without (a .npy dict) the standard names are kept and a single missing one is
    filled by the single unknown layer of the same kind (4-d weights: conv, 2-d: fc)."""
    if kinds is not None:
        convs = [n for n in blobs if kinds.get(n) == "Convolution"]
        fcs = [n for n in blobs if kinds.get(n) == "InnerProduct"]
        if len(convs) != 5 or len(fcs) != 3:
            if all(n in blobs for n in LAYERS):  # an unusual file that still names its layers
                return {n: blobs[n] for n in LAYERS}
            raise ValueError(
                f"{path}: expected AlexNet's 5 convolution and 3 inner-product layers, "
                f"found {len(convs)} ({', '.join(convs)}) and {len(fcs)} ({', '.join(fcs)})"
            )
        return dict(zip(LAYERS, (blobs[n] for n in convs + fcs)))
    out = {n: blobs[n] for n in LAYERS if n in blobs}
    unknown = [n for n in blobs if n not in LAYERS]
    for role in [n for n in LAYERS if n not in out]:
        rank = 4 if role.startswith("conv") else 2
        fits = [n for n in unknown if np.ndim(blobs[n][0]) == rank]
        if len(fits) == 1:
            out[role] = blobs[fits[0]]
            unknown.remove(fits[0])
    return out


def caffe_variant(layers: list[tuple[str, str]]) -> str:
    """bvlc_alexnet normalises then pools; CaffeNet pools then normalises."""
    types = [t for _, t in layers]
    if "LRN" not in types or "Pooling" not in types:
        return "alexnet_caffe"
    return "caffenet" if types.index("Pooling") < types.index("LRN") else "alexnet_caffe"


def read_npy_dict(path: Path) -> dict:
    """A pickled dict saved with np.save (an object array), read with the restricted unpickler:
    the .npy header is parsed here and the payload may only hold arrays and plain containers."""
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ValueError(f"{path}: not a .npy file (bad magic)")
        f.seek(0)
        shape, dtype, _ = npy_header(f, str(path))  # numpy's own parser, no eval
        if not dtype.hasobject:
            raise ValueError(
                f"{path}: holds a plain array, not the {{layer: [weights, biases]}} dict "
                "that caffe-tensorflow writes"
            )
        if shape != ():  # np.save of a dict: a 0-d object array around it
            raise ValueError(f"{path}: an object array of shape {shape}, not a saved dict")
        payload = f.read()
    try:
        obj = safe_loads(payload, encoding="latin1")
    except Exception as e:  # UnpicklingError for refused globals, EOFError when truncated
        raise ValueError(f"{path}: refused or unreadable pickle ({type(e).__name__}: {e})") from None
    obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () else obj
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of layers, found {type(obj).__name__}")
    return obj


def _weights_biases(layer, name: str, path: Path) -> list[np.ndarray]:
    if isinstance(layer, dict):  # later caffe-tensorflow: {"weights": ..., "biases": ...}
        try:
            return [layer["weights"], layer["biases"]]
        except KeyError:
            raise ValueError(
                f"{path}: layer {name} holds {sorted(layer)}, expected 'weights' and 'biases'"
            ) from None
    if isinstance(layer, (list, tuple)) and len(layer) >= 2:  # Guerzhoy's [weights, biases]
        return list(layer[:2])
    raise ValueError(
        f"{path}: layer {name} is a {type(layer).__name__}, expected [weights, biases] "
        "or {'weights': ..., 'biases': ...}"
    )


def npy_to_caffe_layout(d: dict, path: Path) -> dict[str, list[np.ndarray]]:
    """caffe-tensorflow stores conv weights HWIO, fc weights (in, out), and fc6's inputs in
    H x W x C order; Caffe (and torch) use OIHW, (out, in) and C x H x W."""
    raw = {}
    for k, layer in d.items():
        try:
            raw[str(k)] = [np.asarray(v, dtype=np.float32) for v in _weights_biases(layer, k, path)]
        except (TypeError, ValueError) as e:
            raise ValueError(
                e
                if str(e).startswith(str(path))
                else f"{path}: layer {k} does not hold arrays of numbers ({e})"
            ) from None
    out = {}
    for name, (w, b) in assign_roles(raw, None, path).items():
        if w.ndim == 4:
            w = w.transpose(3, 2, 0, 1)
        elif name == "fc6" and w.shape[0] == 9216:
            w = w.reshape(6, 6, 256, -1).transpose(2, 0, 1, 3).reshape(9216, -1).T
        else:
            w = w.T
        out[name] = [w, b]
    return out


def read_caffe_mean(path: str | Path) -> np.ndarray:
    """Caffe's mean image as (3, H, W) float32, BGR, 0-255 pixel units: imagenet_mean.binaryproto
    (a BlobProto, 1x3x256x256) or ilsvrc_2012_mean.npy (a plain 3x256x256 array)."""
    path = Path(path)
    regular(path, f"--mean {path}")
    if path.suffix == ".npy":
        try:
            arr = load_npy(path, f"--mean {path}")  # the header's shape checked against the file
        except (OSError, ValueError) as e:
            if isinstance(e, (FileNotFoundError, BadInput)):
                raise
            raise ValueError(f"--mean {path}: not a plain .npy array ({e})") from None
    else:
        try:
            arr = _blob(path, "mean", MESSAGES["BlobProto"].FromString(path.read_bytes()))
        except (DecodeError, RuntimeError) as e:
            raise ValueError(f"--mean {path}: not a Caffe BlobProto (.binaryproto): {e}") from None
    arr = np.asarray(arr, dtype=np.float32)
    arr = arr[0] if arr.ndim == 4 and arr.shape[0] == 1 else arr
    if arr.ndim != 3 or arr.shape[0] != 3 or min(arr.shape[1:]) < 1:
        raise ValueError(f"--mean {path}: expected a 3 x H x W mean image, got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"--mean {path}: values outside 0-255; expected a mean of 0-255 pixels")
    return arr


def caffe_state_dict(blobs: dict[str, list[np.ndarray]], model: torch.nn.Module, path: Path) -> dict:
    """Map conv1..fc8 onto features.convN / classifier.fcN, checking every shape."""
    missing = [n for n in LAYERS if n not in blobs]
    if missing:
        raise ValueError(
            f"{path}: layer(s) {', '.join(missing)} missing (found {', '.join(blobs) or 'none'})"
        )
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
                raise ValueError(
                    f"{path}: {name} {part} has shape {blob.shape}, "
                    f"{getattr(model, 'name', 'the model')} expects {want}"
                )
            state[key] = torch.from_numpy(np.ascontiguousarray(blob).reshape(want))
    return state
