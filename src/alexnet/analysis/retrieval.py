"""Retrieval by a network's features (§6.1, Fig. 4 right): the images of an index nearest to each
query, by Euclidean distance of their features or Hamming distance of their binary codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.sources import read_regular
from ..errors import BadInput
from ..evaluation.predict import image_files
from ..interop.pretrained import load_pretrained
from .codes import load_codes
from .features import (
    index_dataset,
    layer_output,
    load_index,
    mean_average_precision,
    neighbours,
    query_weights,
)
from .figures import neighbours_grid

FIGURE_QUERIES = 8  # rows of a figure: the first queries


@dataclass
class Found:
    """Each query's nearest images of an index, nearest first."""

    index: dict  # the index searched (features.load_index)
    names: list[str]  # the queries' paths
    labels: np.ndarray  # the queries' labels; -1: unlabelled (image files)
    distances: np.ndarray  # (queries, k)
    rows: np.ndarray  # (queries, k): rows of the index
    metric: str
    images: list[torch.Tensor] | None = None  # the query images, when they were image files
    query_index: dict | None = None  # the index the queries came from, otherwise

    def label(self, row: int) -> str:
        """The class name of the index's row (its number where the index names none)."""
        i, classes = int(self.index["labels"][row]), self.index["classes"]
        return str(classes[i]) if 0 <= i < len(classes) and classes[i] else str(i)

    def mean_ap(self) -> float | None:
        """mAP@k over the queries, when they and the index are labelled."""
        if (self.labels >= 0).all() and (self.index["labels"] >= 0).all():
            return mean_average_precision(self.labels, self.index["labels"][self.rows])
        return None


def _query_features(
    index: dict, query: list[str] | None, query_index: dict | None, weights: str | None, where: str
):
    """(features, names, labels, images) of the queries: an index's rows, or image files run
    through `weights` (default: the network the index was made with) up to the index's layer."""
    if query_index is not None:
        q = query_index
        return q["features"], [str(p) for p in q["paths"]], q["labels"], None
    model, card = load_pretrained(query_weights(index, weights, where))
    files = image_files(query)
    imgs = [card.decode(read_regular(f, str(f)), str(f)) for f in files]
    with torch.no_grad():
        feats = layer_output(model, card.pipeline().eval(torch.stack(imgs)), str(index["layer"]))
    return feats.numpy(), [str(f) for f in files], np.full(len(files), -1), imgs


def retrieve(
    index: str | Path,
    query: list[str] | None = None,
    query_index: str | Path | None = None,
    k: int = 8,
    metric: str = "euclidean",
    codes: str | Path | None = None,
    weights: str | None = None,
) -> Found:
    """The k nearest images of `index` (an .npz from `alexnet features`) to each query: image
    files (`query`) or the vectors of another index (`query_index`: leave-one-out, a query is
    never its own match). metric "hamming" compares the binary codes of `codes` (`alexnet codes`)."""
    if bool(query) == bool(query_index):
        raise BadInput("give --query IMAGE... or --query-index Q.npz (one of them)")
    if metric == "hamming" and not codes:
        raise BadInput("--metric hamming needs --codes codes.pt (from `alexnet codes train`)")
    base_index = load_index(index)
    q_index = load_index(query_index, "--query-index") if query_index else None
    qf, names, labels, imgs = _query_features(base_index, query, q_index, weights, f"--index {index}")
    feats, base = qf, base_index["features"]
    if qf.shape[1] != base.shape[1]:
        queries = (
            f"--query-index {query_index}"
            if query_index
            else f"the queries (with --weights {weights or base_index['weights']})"
        )
        raise BadInput(
            f"{queries}: {qf.shape[1]}-d features, but --index {index} holds {base.shape[1]}-d "
            "ones (made with other weights or another layer?)"
        )
    if metric == "hamming":
        model = load_codes(codes)
        if model.dim != base.shape[1]:
            raise BadInput(
                f"--codes {codes}: made for {model.dim}-d features, the index holds {base.shape[1]}-d ones"
            )
        feats, base = model.encode(qf), model.encode(base)
    itself = None
    if q_index is not None:  # leave-one-out: a query that is in the index is not counted as its own match
        where = {str(p): i for i, p in enumerate(base_index["paths"])}
        itself = [where.get(n, -1) for n in names]
    dist, rows = neighbours(feats, base, k, metric, itself)
    return Found(base_index, names, labels, dist, rows, metric, imgs, q_index)


def _images_of(index: dict, rows) -> list[list[torch.Tensor]]:
    """The stored images behind each list of index rows, re-read from the dataset the index was
    made from (opened once)."""
    ds, idx = index_dataset(index), index["indices"]
    return [[ds[int(idx[p])][0] for p in positions] for positions in rows]


def figure(found: Found, out: str | Path) -> Path:
    """Fig. 4 (right): the first queries, each beside its neighbours captioned (label, distance)."""
    shown = min(len(found.names), FIGURE_QUERIES)
    queries = (
        found.images[:shown] if found.images is not None else _images_of(found.query_index, [range(shown)])[0]
    )
    rows = _images_of(found.index, found.rows[:shown])
    caps = [
        [f"{found.label(i)}\n{d:.1f}" for d, i in zip(found.distances[q], found.rows[q])]
        for q in range(shown)
    ]
    return neighbours_grid(queries, rows, caps, out)
