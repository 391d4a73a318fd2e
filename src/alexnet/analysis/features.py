"""Paper §6.1: the 4096-d fc7 activations as an image description — extract them for a dataset,
find nearest neighbours by Euclidean distance (Fig. 4 right), or by Hamming distance between
short binary codes learned by an autoencoder (the retrieval the paper proposes)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset
from tqdm import tqdm

from ..data import Decoding, make_loader, open_dataset
from ..download import file_digests
from ..errors import BadInput
from ..interop import hub
from ..interop.pretrained import load_pretrained
from ..untrusted import load_npz, regular

LAYERS = ("fc6", "fc7", "pool5")


def layer_output(model, x: torch.Tensor, layer: str) -> torch.Tensor:
    if layer == "pool5":  # the last conv block's pooled maps, flattened
        return model.forward_features(x).flatten(1)
    return model.embed(x, layer)


@torch.no_grad()
def extract(
    weights: str,
    data: str,
    layer: str,
    out: str | Path,
    split: str | None = "val",
    batch_size: int = 64,
    workers: int = 2,
    shard_size: int = 5000,
    progress: bool = True,
) -> Path:
    """Features of every readable image, written shard by shard into OUT.parts/ so an
    interrupted run restarts at the first missing shard, then gathered into OUT (.npz).

    Labels number the data's own classes (stored as `classes`), matched by name across splits:
    a val split takes its training split's list, so the indexes of both splits agree. Not the
    network's list: features describe new data too (§6.1), whose classes the network lacks."""
    if layer not in LAYERS:
        raise ValueError(f"--layer must be one of {LAYERS}, got {layer!r}")
    out = Path(out)
    if out.suffix != ".npz" or out.name == ".npz":  # numpy would add .npz to any other name
        raise BadInput(f"--out {str(out)!r}: expected a file name for the index ending in .npz")
    model, card = load_pretrained(weights)
    if layer != "pool5" and layer not in getattr(model, "_embed_at", {}):
        raise ValueError(f"{card.model} has no {layer}; use --layer pool5")
    pipeline = card.pipeline()
    ds = open_dataset(data, split, Decoding(card.resize, card.resize))
    card.check_channels(ds.source.channels, data, weights)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    n_shards = -(-len(ds) // shard_size)
    for s in tqdm(range(n_shards), desc=f"features {layer}", unit="shard", disable=not progress):
        part = parts / f"part-{s:05d}.npz"
        if part.exists():
            continue
        sub = Subset(ds, range(s * shard_size, min(len(ds), (s + 1) * shard_size)))
        sub.source = ds.source
        feats, idx = [], []
        for batch in make_loader(sub, batch_size, shuffle=False, workers=workers):
            if len(batch.images):
                feats.append(layer_output(model, pipeline.eval(batch.images), layer).float().numpy())
                idx.append(batch.indices.numpy())  # dataset positions (Subset passes them through)
        tmp = part.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            features=np.concatenate(feats) if feats else np.zeros((0, 0), np.float32),
            indices=np.concatenate(idx) if idx else np.zeros(0, np.int64),
        )
        tmp.replace(part)
    chunks = [load_npz(parts / f"part-{s:05d}.npz") for s in range(n_shards)]  # left by an earlier run
    feats = np.concatenate([c["features"] for c in chunks if len(c["indices"])])
    idx = np.concatenate([c["indices"] for c in chunks])
    names = np.array([ds.source.names[i] for i in idx])
    labels = np.asarray(ds.source.labels)[idx].astype(np.int64)
    ref, digest = weights_ref(weights)  # absolute: `retrieve` finds them from any folder
    data = str(Path(data).resolve()) if Path(data).exists() else str(data)  # (a dataset name stays one)
    np.savez(
        out,
        features=feats.astype(np.float32),
        paths=names,
        labels=labels,
        indices=idx,
        layer=np.array(layer),
        weights=np.array(ref),
        weights_sha256=np.array(digest),
        data=np.array(data),
        split=np.array(split or ""),
        classes=np.array(ds.classes or [""]),
    )
    for c in parts.glob("part-*.npz"):
        c.unlink()
    parts.rmdir()
    return out


def weights_ref(weights: str) -> tuple[str, str]:
    """(the weights as any folder finds them again, their SHA-256): a file by its absolute
    path, a name from `alexnet weights` by its name (and the digest of its verified copy)."""
    path = Path(weights)
    if not path.is_file() and str(weights) in hub.WEIGHTS:
        return str(weights), file_digests(hub.resolve(str(weights), progress=False), ["sha256"])["sha256"]
    return str(path.resolve()), file_digests(path, ["sha256"])["sha256"]


def query_weights(index: dict, given: str | None, where: str) -> str:
    """The weights that turn query images into features comparable with the index's: `given`
    (a warning if it is not what the index was made with), else the index's own, which must
    still be the same bytes (indexes written before the digest was kept: taken as they are)."""
    made, digest = str(index["weights"]), str(index.get("weights_sha256", ""))
    if given is None and not digest:
        return made
    try:
        now = weights_ref(given or made)[1]
    except OSError:
        raise BadInput(
            f"{where}: made with the weights {made}, which cannot be read any more; give them with --weights"
        ) from None
    if digest and now != digest:
        if given is None:
            raise BadInput(
                f"{where}: made with the weights {made}, whose bytes have changed since (SHA-256 "
                f"{now[:12]}..., not {digest[:12]}...); extract the features again, or give "
                "--weights"
            )
        warnings.warn(
            f"--weights {given}: not the weights the index {where} was made with ({made}); "
            "distances between the two networks' features mean little",
            stacklevel=2,
        )
    return given or made


# what each array of an index must be: (kind, dimensions); n rows are shared by the per-image ones
_INDEX = {
    "features": ("f", 2),
    "paths": ("U", 1),
    "labels": ("i", 1),
    "indices": ("i", 1),
    "layer": ("U", 0),
    "weights": ("U", 0),
    "data": ("U", 0),
    "split": ("U", 0),
    "classes": ("U", 1),
    "weights_sha256": ("U", 0),
}
_OPTIONAL = ("weights_sha256",)  # absent from indexes written before it was kept


def load_index(path: str | Path, flag: str = "--index") -> dict:
    """A feature index written by `extract`, every array's presence, type and length checked (and
    every size it declares checked against the file before it is read)."""
    where = f"{flag} {path}"
    regular(path, where)
    try:
        index = load_npz(path, where)
    except OSError as e:
        raise BadInput(f"{where}: not a feature index from `alexnet features` ({e})") from None
    for key, (kind, ndim) in _INDEX.items():
        a = index.get(key)
        if a is None and key in _OPTIONAL:
            continue
        if a is None or a.dtype.kind not in (kind, "u" if kind == "i" else kind) or a.ndim != ndim:
            raise BadInput(
                f"{where}: not a feature index from `alexnet features` ({key!r} is "
                f"{'missing' if a is None else f'{a.dtype} of shape {a.shape}'})"
            )
    n = len(index["features"])
    if any(len(index[k]) != n for k in ("paths", "labels", "indices")) or str(index["layer"]) not in LAYERS:
        raise BadInput(
            f"{where}: a damaged feature index (its arrays disagree on the number of images, "
            "or it names no known layer)"
        )
    if n == 0 or not np.isfinite(index["features"]).all():
        raise BadInput(f"{where}: {'holds no features' if n == 0 else 'holds non-finite features'}")
    index["features"] = index["features"].astype(np.float32, copy=False)
    return index


def index_dataset(index: dict, size: int = 128):
    """The dataset an index was made from, its images decoded at `size` (for pictures); its
    length checked against the index, which names images by their position in it."""
    ds = open_dataset(str(index["data"]), str(index["split"]) or None, Decoding(size, size))
    idx = index["indices"]
    if len(idx) and (idx.min() < 0 or idx.max() >= len(ds)):
        raise BadInput(
            f"the index names image {int(idx.max())}, but {index['data']} now holds {len(ds)}: "
            "the data changed since `alexnet features`; extract the features again"
        )
    return ds


# ---- distances and neighbours ----------------------------------------------------------------
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Q, N) Hamming distances between packed binary codes (uint8 rows from np.packbits)."""
    return _POPCOUNT[a[:, None, :] ^ b[None, :, :]].sum(-1, dtype=np.int64)


def neighbours(
    query: np.ndarray, index: np.ndarray, k: int, metric: str = "euclidean", itself: list[int] | None = None
):
    """(distances, indices), each (Q, k), nearest first; ties keep index order. `itself[q]`, where
    not -1, is query q's own position in the index: never returned as its neighbour."""
    if metric == "euclidean":
        d = torch.cdist(torch.from_numpy(query).double(), torch.from_numpy(index).double()).numpy()
    elif metric == "hamming":
        d = hamming(query, index).astype(np.float64)
    else:
        raise ValueError(f"--metric must be euclidean or hamming, got {metric!r}")
    if itself is not None:
        rows = np.flatnonzero(np.asarray(itself) >= 0)
        d[rows, np.asarray(itself)[rows]] = np.inf
    k = min(k, index.shape[0] - (itself is not None and max(itself, default=-1) >= 0))
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, 1), order


def mean_average_precision(query_labels: np.ndarray, found_labels: np.ndarray) -> float:
    """mAP@k: for each query, the mean of precision@i over the ranks i that hold a relevant
    (same-label) result, averaged over queries (0 for a query with none)."""
    rel = (found_labels == query_labels[:, None]).astype(np.float64)
    prec = np.cumsum(rel, 1) / np.arange(1, rel.shape[1] + 1)
    hits = rel.sum(1)
    ap = np.where(hits > 0, (prec * rel).sum(1) / np.maximum(hits, 1), 0.0)
    return float(ap.mean())
