"""Keras weights for the BatchNorm AlexNet (`alexnet_bn`), read with h5py; nothing in the file is
executed or deserialised as Keras objects.

Three containers hold the same arrays:
- `.weights.h5` (Keras 3 `save_weights`): layers/<name>/vars/0..n, no layer order stored;
- legacy `.h5` (Keras 2, or Keras 3 `save(...h5)`): [model_weights/]<name>/<weight names>, with
  the layer order in the `layer_names` attribute and the config in `model_config`;
- `.keras` (Keras 3 `save`): a zip of config.json (layer order, data format) and model.weights.h5.
Layers are recognised by the shapes of their arrays (Conv2D: kernel HWIO + bias; Dense: kernel
(in, out) + bias; BatchNormalization: gamma, beta, moving mean, moving variance) and taken in
the model's layer order, or for a bare .weights.h5 in the natural order of Keras' automatic names
(conv2d, conv2d_1, ..., conv2d_10).
"""

from __future__ import annotations

import io
import math
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import BadInput
from ..jsonio import loads
from ..untrusted import MAX_RATIO, SMALL, open_zip, read_member

# sizes read from a file are untrusted: limits far above the BatchNorm AlexNet's ~62M values
MAX_VALUES = 200_000_000
# bytes, .keras zip members: a Keras config is tens of kB (4 MB would be thousands of layers)
MAX_MEMBER = {"config.json": 4 << 20, "model.weights.h5": 2 << 30}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ValueError(
            "reading Keras weights needs h5py: pip install h5py (or pip install 'alexnet[keras]')"
        ) from None
    return h5py


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _config_layers(config: dict | None) -> tuple[list[str] | None, str]:
    """(layer names in model order, data format) from a Keras model config, if there is one."""
    if not isinstance(config, dict):  # none, or not a Keras config: the layer names decide
        return None, "channels_last"
    cfg = config.get("config", config)
    layers = cfg.get("layers") if isinstance(cfg, dict) else None
    if not isinstance(layers, list):
        return None, "channels_last"
    names, fmt = [], "channels_last"
    for layer in layers:
        c = layer.get("config", {}) if isinstance(layer, dict) else {}
        if not isinstance(c, dict):
            continue
        if isinstance(c.get("name"), str):
            names.append(c["name"])
        if layer.get("class_name") == "Flatten" and c.get("data_format") in (
            "channels_last",
            "channels_first",
        ):
            fmt = c["data_format"]
    return names, fmt


# HDF5's own filters (deflate, shuffle, fletcher32, szip, nbit, scaleoffset) and h5py's lzf: any
# other filter number makes the HDF5 library look for a plugin to load, named by the file
_FILTERS = {1, 2, 3, 4, 5, 6, 32000}


def check_own_bytes(f, where) -> None:
    """Every dataset of the file must be read from the file's own bytes: HDF5 can also keep a
    dataset's bytes in another file (external storage), link to an object in another file
    (external and user-defined links) or assemble a dataset from other files (virtual datasets).
    Followed, these read any local file (or block on a FIFO) into the weights, and a converted
    file would carry those bytes on. Nothing is followed: each is refused, naming the object."""
    h5py = _h5py()
    found: list[tuple[str, str]] = []
    damage: list[Exception] = []

    def look(name: str, link):
        try:
            inspect(name, link)
        except Exception as e:  # noqa: BLE001 - raised through HDF5's visit it would come out garbled
            damage.append(e)
            return True  # stops the visit

    def inspect(name: str, link) -> None:
        if isinstance(link, h5py.SoftLink):
            return  # a path inside this file; with no link out of it, it stays inside
        if isinstance(link, h5py.ExternalLink):
            found.append((name, f"an external link to {link.filename}:{link.path}"))
            return
        if not isinstance(link, h5py.HardLink):
            found.append((name, "a user-defined link"))
            return
        obj = f.get(name)
        what = _foreign(obj) if isinstance(obj, h5py.Dataset) else None
        if what:
            found.append((name, what))

    try:
        f.visititems_links(look)
    except Exception as e:  # noqa: BLE001 - link kinds h5py does not know, a damaged link table
        damage.append(e)
    if damage:
        e = damage[0]
        raise ValueError(f"{where}: not a readable Keras file ({type(e).__name__}: {e})") from None
    if found:
        name, what = found[0]
        raise BadInput(
            f"{where}: {name} is {what}; only weights stored in the file itself are read"
            + (f" ({len(found) - 1} more such object(s))" if len(found) > 1 else "")
        )


def _foreign(d) -> str | None:
    """What makes an HDF5 dataset read bytes that are not the file's own, or None."""
    plist = d.id.get_create_plist()
    if d.is_virtual:
        return "a virtual dataset (its bytes come from other files)"
    if plist.get_external_count():
        return f"a dataset stored in an external file ({plist.get_external(0)[0].decode(errors='replace')})"
    bad = [n for n in (plist.get_filter(i)[0] for i in range(plist.get_nfilters())) if n not in _FILTERS]
    return f"a dataset compressed with filter {bad[0]}, which HDF5 would load a plugin for" if bad else None


def _read_h5(f, config: dict | None) -> list[tuple[str, list]]:
    """[(layer name, [h5py datasets])] in model order, for either H5 layout."""
    order, _ = _config_layers(config)
    group = f["model_weights"] if "model_weights" in f else f
    if "layer_names" in group.attrs:  # legacy: the order and the weight names are attributes
        out = []
        for name in group.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            g = group[name]
            wnames = [w.decode() if isinstance(w, bytes) else str(w) for w in g.attrs.get("weight_names", [])]
            out.append((name, [g[w] for w in wnames]))
        return out
    layers = next((f[k] for k in ("layers", "_layer_checkpoint_dependencies") if k in f), None)
    if layers is None:
        raise ValueError(
            "neither a Keras 3 .weights.h5 (no 'layers' group) nor a legacy Keras "
            "HDF5 file (no 'layer_names' attribute)"
        )
    names = list(layers.keys())
    if order and set(order) >= set(names):
        names = [n for n in order if n in layers]
    else:
        names.sort(key=_natural)
    out = []
    for name in names:
        v = layers[name].get("vars")
        out.append((name, [v[str(i)] for i in range(len(v))] if v is not None else []))
    return out


def read_keras(path: Path) -> tuple[list[tuple[str, list[np.ndarray]]], str, dict | None]:
    """([(layer, arrays)] in model order, data format, model config or None)."""
    h5py = _h5py()
    try:
        if path.suffix == ".keras":
            with open_zip(path, str(path), MAX_MEMBER, "Keras file") as z:  # sizes and ratios checked first
                infos = {i.filename: i for i in z.infolist()}
                if "model.weights.h5" not in infos:
                    raise ValueError("a .keras archive without model.weights.h5")
                config = (
                    loads(read_member(z, infos["config.json"], str(path)), f"{path} (config.json)")
                    if "config.json" in infos
                    else None
                )
                data = io.BytesIO(read_member(z, infos["model.weights.h5"], str(path)))
            f = h5py.File(data, "r")
        else:
            f = h5py.File(path, "r")
            raw = f.attrs.get("model_config")
            config = loads(raw, f"{path} (model_config)") if raw is not None else None
    except (
        OSError,
        zipfile.BadZipFile,
        KeyError,
        UnicodeDecodeError,
        zlib.error,
        RuntimeError,
        EOFError,
        SystemError,
    ) as e:  # SystemError: h5py's lock garbles some errors of a damaged file
        raise ValueError(f"{path}: not a readable Keras file ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise ValueError(e if str(e).startswith(str(path)) else f"{path}: {e}") from None
    try:
        with f:  # (closing a damaged file can fail too)
            check_own_bytes(f, path)  # before any dataset is opened
            layers = _read_h5(f, config)
            arrays = list(_materialise(layers, path))  # declared shapes are checked before reading
    except (KeyError, AttributeError, TypeError, OSError, IndexError, RuntimeError, SystemError) as e:
        # a damaged or foreign file (SystemError: h5py's lock garbles some of its errors)
        raise ValueError(f"{path}: not a readable Keras file ({type(e).__name__}: {e})") from None
    except ValueError as e:
        if str(e).startswith(str(path)):  # already one line naming the file (a BadInput stays one)
            raise
        raise ValueError(f"{path}: {e}") from None
    return arrays, _config_layers(config)[1], config


def _materialise(layers, path: Path):
    """Every layer's arrays, once all their declared shapes are known to be sane."""
    total = 0
    for name, datasets in layers:
        shapes = [tuple(d.shape) for d in datasets]
        if datasets and _kind(shapes) is None:
            raise ValueError(
                f"{path}: layer {name} holds arrays of shapes {shapes}: not a Conv2D, "
                "Dense or BatchNormalization of the BatchNorm AlexNet"
            )
        total += sum(math.prod(s) for s in shapes)
        for d in datasets:  # an HDF5 dataset may declare a shape with nothing stored behind it
            what = _foreign(d)  # checked again where it is read, whatever the visit of the file saw
            if what:
                raise BadInput(
                    f"{path}: {d.name.lstrip('/')} is {what}; only weights stored in the file itself are read"
                )
            if d.nbytes > max(MAX_RATIO * d.id.get_storage_size(), SMALL):
                raise ValueError(
                    f"{path}: layer {name} declares {d.nbytes:,} bytes but stores "
                    f"{d.id.get_storage_size():,}; refusing it"
                )
    if total > MAX_VALUES:
        raise ValueError(f"{path}: {total:,} values in all, implausibly many for the BatchNorm AlexNet")
    for name, datasets in layers:
        yield name, [np.asarray(d[()], dtype=np.float32) for d in datasets]


def _kind(shapes: list[tuple]) -> str | None:
    if len(shapes) == 2 and len(shapes[0]) == 4 and shapes[1] == shapes[0][3:]:
        return "conv"
    if len(shapes) == 2 and len(shapes[0]) == 2 and shapes[1] == shapes[0][1:]:
        return "dense"
    if len(shapes) == 4 and all(len(s) == 1 and s == shapes[0] for s in shapes):
        return "bn"
    return None


def keras_state_dict(path: Path) -> tuple[dict, dict, int, int]:
    """(state dict for alexnet_bn, model options, classes, input channels) from a Keras file."""
    layers, fmt, _ = read_keras(path)
    by_kind: dict[str, list] = {"conv": [], "dense": [], "bn": []}
    for name, arrays in layers:
        if arrays:
            by_kind[_kind([a.shape for a in arrays])].append((name, arrays))
    convs, denses, bns = by_kind["conv"], by_kind["dense"], by_kind["bn"]
    if len(convs) != 5 or len(denses) != 3 or len(bns) not in (6, 7):
        raise ValueError(
            f"{path}: {len(convs)} Conv2D, {len(denses)} Dense and {len(bns)} "
            "BatchNormalization layers; the BatchNorm AlexNet has 5, 3 and 6 "
            "(7 with a BN after conv5)"
        )
    conv5_relu = len(bns) == 7
    bn_names = [
        "features.bn1",
        "features.bn2",
        "features.bn3",
        "features.bn4",
        *(["features.bn5"] if conv5_relu else []),
        "classifier.bn6",
        "classifier.bn7",
    ]
    state = {}
    for i, (_, (k, b)) in enumerate(convs, 1):  # HWIO -> OIHW
        state[f"features.conv{i}.weight"] = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
        state[f"features.conv{i}.bias"] = torch.from_numpy(b)
    channels = convs[-1][1][0].shape[3]
    for i, (_, (k, b)) in enumerate(denses, 6):
        if i == 6 and fmt == "channels_last" and k.shape[0] % channels == 0:
            # Keras flattens H x W x C, torch C x H x W: reorder fc6's input rows to match
            side = int(round((k.shape[0] // channels) ** 0.5))
            if side * side * channels == k.shape[0]:
                k = k.reshape(side, side, channels, -1).transpose(2, 0, 1, 3).reshape(k.shape[0], -1)
        state[f"classifier.fc{i}.weight"] = torch.from_numpy(np.ascontiguousarray(k.T))
        state[f"classifier.fc{i}.bias"] = torch.from_numpy(b)
    for key, (_, (gamma, beta, mean, var)) in zip(bn_names, bns):
        state.update(
            {
                f"{key}.weight": torch.from_numpy(gamma),
                f"{key}.bias": torch.from_numpy(beta),
                f"{key}.running_mean": torch.from_numpy(mean),
                f"{key}.running_var": torch.from_numpy(var),
                f"{key}.num_batches_tracked": torch.tensor(0),
            }
        )
    classes, in_ch = denses[-1][1][0].shape[1], convs[0][1][0].shape[2]
    return state, {"conv5_relu": conv5_relu}, classes, in_ch
