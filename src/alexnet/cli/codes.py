"""`alexnet codes train`: short binary codes of an index's features, for fast retrieval (§6.1)."""

from __future__ import annotations

from ..analysis.codes import MAX_BITS, save_codes, train_codes
from ..analysis.features import load_index
from ..errors import BadInput, shown
from . import argtypes as T
from .options import add, command


def register(sub) -> None:
    s = command(
        sub,
        "codes",
        "binary codes for fast retrieval",
        "Short binary codes for fast retrieval (§6.1): an autoencoder that compresses the\n"
        "features of an index, compared by Hamming distance in `retrieve --metric hamming`.",
        "alexnet codes train --index train_fc7.npz --bits 256 --out codes.pt",
    )
    csub = s.add_subparsers(dest="action", required=True, metavar="ACTION", help="what to do")
    c = command(
        csub,
        "train",
        "train the autoencoder on an index's features",
        "Train the code autoencoder on the feature vectors of an index (§6.1).",
        "alexnet codes train --index train_fc7.npz --bits 256 --epochs 30 --out codes.pt",
        run,
    )
    add(c, "--index", required=True, metavar="INDEX.npz", help="an index from `alexnet features`")
    add(c, "--bits", type=T.int_in(1, MAX_BITS), default=256, metavar="N", help="code length in bits")
    add(c, "--epochs", type=T.int_in(1, 10**6), default=30, metavar="N", help="passes over the features")
    add(c, "--out", required=True, metavar="CODES.pt", help="where to write the autoencoder")


def run(args) -> int:
    index = load_index(args.index)
    if len(index["features"]) < 2:
        raise BadInput(
            f"--index {args.index}: holds {len(index['features'])} feature vector; codes are "
            "learned from at least 2"
        )
    model = train_codes(index["features"], args.bits, args.epochs)
    save_codes(model, args.out)
    print(
        f"{args.bits}-bit codes for {index['features'].shape[1]}-d {shown(index['layer'])} features -> "
        f"{args.out}"
    )
    return 0
