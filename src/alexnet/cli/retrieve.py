"""`alexnet retrieve`: the images of a feature index nearest to each query (§6.1, Fig. 4 right)."""

from __future__ import annotations

from ..analysis.figures import check_out
from ..analysis.retrieval import FIGURE_QUERIES, Found, figure, retrieve
from ..errors import shown
from . import argtypes as T
from .options import add, command, weights

K = T.int_in(1, 10**6)  # neighbours per query


def register(sub) -> None:
    s = command(
        sub,
        "retrieve",
        "nearest neighbours in a feature index (Fig. 4 right)",
        "The images of an index nearest to each query by Euclidean distance of their features\n"
        "(§6.1, Fig. 4 right) or Hamming distance of binary codes; mAP when the queries are\n"
        "labelled.",
        "alexnet retrieve --index train_fc7.npz --query photo.jpg --k 6 --out neighbours.png",
        run,
    )
    g = s.add_argument_group("queries (give one of the two)")
    add(
        g,
        "--query",
        nargs="+",
        default=None,
        metavar="IMAGE",
        default_text="none",
        help="query image files or folders, run through the index's network",
    )
    add(
        g,
        "--query-index",
        default=None,
        metavar="Q.npz",
        default_text="none",
        help="an index from `alexnet features` whose vectors are the queries (mAP when labelled)",
    )
    g = s.add_argument_group("search")
    add(g, "--index", required=True, metavar="INDEX.npz", help="the index searched, from `alexnet features`")
    add(g, "--k", type=K, default=8, metavar="K", help="neighbours per query")
    add(
        g,
        "--metric",
        choices=["euclidean", "hamming"],
        default="euclidean",
        help="euclidean on the features (§6.1), or hamming on binary codes (needs --codes)",
    )
    add(
        g,
        "--codes",
        default=None,
        metavar="CODES.pt",
        default_text="none",
        help="the autoencoder from `alexnet codes train`, for --metric hamming",
    )
    weights(
        g,
        required=False,
        default=None,
        default_text="the weights the index was made with",
        help="the network for --query images",
    )
    add(
        g,
        "--out",
        default=None,
        metavar="GRID.png",
        default_text="no figure",
        help=f"draw the first {FIGURE_QUERIES} queries beside their neighbours (Fig. 4, right)",
    )


def run(args) -> int:
    if args.out:
        check_out(args.out)
    found = retrieve(args.index, args.query, args.query_index, args.k, args.metric, args.codes, args.weights)
    show(found, args.out)
    return 0


def show(found: Found, out: str | None) -> None:
    """Each query, then its neighbours with distance, label and path; mAP when it can be had;
    the figure into `out`, if given."""
    index = found.index
    for q, name in enumerate(found.names):  # names and paths from the index: strangers' text, escaped
        print(shown(name))
        for d, i in zip(found.distances[q], found.rows[q]):
            print(f"  {d:10.4f}  {shown(found.label(i)):<16} {shown(index['paths'][i])}")
    m = found.mean_ap()
    if m is not None:
        print(f"mAP@{found.rows.shape[1]} ({found.metric}): {m:.4f} over {len(found.names)} queries")
    if out:
        print(f"figure -> {figure(found, out)}")
