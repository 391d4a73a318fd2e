"""`alexnet visualize filters|curves|predictions|neighbors`: the paper's figures (Fig. 3, Fig. 4)
and a run's training curves."""

from __future__ import annotations

from pathlib import Path

from ..analysis import figures
from ..analysis.retrieval import retrieve
from ..evaluation.predict import predict
from ..interop.pretrained import load_pretrained
from ..training.checkpoint import read_metrics
from . import retrieve as retrieve_command
from .options import add, class_names, command, weights


def register(sub) -> None:
    s = command(
        sub,
        "visualize",
        "the paper's pictures",
        "The paper's figures from a network or a run: conv1 filters (Fig. 3), predictions and\n"
        "neighbours (Fig. 4), training curves.",
        "alexnet visualize filters --weights caffenet --out fig3.png",
    )
    vsub = s.add_subparsers(dest="what", required=True, metavar="WHAT", help="which picture")
    v = command(
        vsub,
        "filters",
        "conv1 kernels, towers side by side (Fig. 3)",
        "The first layer's kernels as an image grid, one block per tower (Fig. 3).",
        "alexnet visualize filters --weights caffenet --out fig3.png",
        filters,
    )
    weights(v)
    _out(v)
    v = command(
        vsub,
        "curves",
        "training/validation error vs epoch from RUN/metrics.csv",
        "Training and validation error against epoch, from a run folder's metrics.csv.",
        "alexnet visualize curves runs/quick --out curves.png",
        curves,
    )
    add(v, "run", help="a run folder of `alexnet train`")
    _out(v)
    v = command(
        vsub,
        "predictions",
        "images with their top-5 bars (Fig. 4 left)",
        "Images beside the bars of their top-5 classes (Fig. 4, left).",
        "alexnet visualize predictions photos/ --weights caffenet --out fig4_left.png",
        predictions,
    )
    add(v, "images", nargs="+", metavar="IMAGE", help="image files or folders")
    weights(v)
    class_names(v)
    _out(v)
    v = command(
        vsub,
        "neighbors",
        "query images beside their nearest neighbours (Fig. 4 right)",
        "Query images beside their nearest neighbours in an index by Euclidean distance of\n"
        "features (§6.1, Fig. 4 right).",
        "alexnet visualize neighbors photo.jpg --index train_fc7.npz --k 6 --out fig4_right.png",
        neighbors,
    )
    add(v, "images", nargs="+", metavar="IMAGE", help="query image files or folders")
    add(v, "--index", required=True, metavar="INDEX.npz", help="the index searched, from `alexnet features`")
    weights(
        v,
        required=False,
        default=None,
        default_text="the weights the index was made with",
        help="the network for the query images",
    )
    add(v, "--k", type=retrieve_command.K, default=6, metavar="K", help="neighbours per query (Fig. 4: 6)")
    _out(v)


def _out(p) -> None:
    add(p, "--out", required=True, metavar="OUT.png", help="the image to write")


def filters(args) -> int:
    figures.check_out(args.out)
    model, _ = load_pretrained(args.weights)
    print(f"figure -> {figures.conv1_filters(model, args.out)}")
    return 0


def curves(args) -> int:
    figures.check_out(args.out)
    path = Path(args.run) / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics (is {args.run} a run folder of `alexnet train`?)")
    print(f"figure -> {figures.curves(read_metrics(path), args.out)}")
    return 0


def predictions(args) -> int:
    figures.check_out(args.out)
    results, _ = predict(args.images, args.weights, args.class_names, 5, "center")
    out = figures.prediction_grid(
        [r[2] for r in results], [r[1] for r in results], args.out, [Path(r[0]).name for r in results]
    )
    print(f"figure -> {out}")
    return 0


def neighbors(args) -> int:
    figures.check_out(args.out)
    retrieve_command.show(retrieve(args.index, args.images, k=args.k, weights=args.weights), args.out)
    return 0
