"""`alexnet features`: a layer's activations for every image of a dataset, as an index (§6.1)."""

from __future__ import annotations

import numpy as np

from ..analysis.features import LAYERS, extract
from .options import add, batch_size, command, data, split, weights, workers


def register(sub) -> None:
    s = command(
        sub,
        "features",
        "fc6/fc7/pool5 features of a dataset into an .npz (§6.1)",
        "A layer's activations for every image of a dataset (§6.1: the 4096-d fc7 vector), with\n"
        "labels and paths, written as an .npz index that `retrieve` and `codes` read.",
        "alexnet features --weights caffenet --data /path/to/imagenet --split val --out val_fc7.npz",
        run,
    )
    weights(s)
    data(s)
    split(s, "val")
    add(
        s,
        "--layer",
        default="fc7",
        choices=list(LAYERS),
        help="the layer whose output is the feature (§6.1: fc7, the last 4096-d hidden layer)",
    )
    add(s, "--out", required=True, metavar="INDEX.npz", help="the index file to write")
    batch_size(s, 64, help="images per forward pass")
    workers(s)


def run(args) -> int:
    out = extract(args.weights, args.data, args.layer, args.out, args.split, args.batch_size, args.workers)
    with np.load(out) as z:
        print(f"{z['features'].shape[0]} images x {z['features'].shape[1]} {args.layer} features -> {out}")
    return 0
