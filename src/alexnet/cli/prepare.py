"""`alexnet prepare`: a dataset decoded once, at 256 short side (§2), into WebDataset tar shards."""

from __future__ import annotations

from ..data.prepare import prepare
from . import argtypes as T
from .options import add, command, data_labels, workers


def register(sub) -> None:
    s = command(
        sub,
        "prepare",
        "write a dataset at 256 short side into WebDataset tar shards",
        "Decode a dataset once, rescale to the shorter side (§2: 256) and write its train and val\n"
        "splits as WebDataset tar shards (JPEG + class), which train and evaluate read fast.",
        "alexnet prepare /path/to/imagenet /path/to/imagenet-shards --shard-size 5000",
        run,
    )
    add(s, "src", help="the dataset: a folder, .tar, shards or dataset name")
    add(s, "dst", help="folder for train-*.tar, val-*.tar and classes.txt")
    add(
        s,
        "--resize",
        type=T.SIDE,
        default=256,
        metavar="N",
        help="shorter side the images are stored at (§2)",
    )
    add(s, "--shard-size", type=T.int_in(1, 10**7), default=1000, metavar="N", help="images per shard")
    add(s, "--quality", type=T.int_in(1, 100), default=95, metavar="Q", help="JPEG quality, 1..100")
    data_labels(s)
    workers(s)


def run(args) -> int:
    written = prepare(
        args.src,
        args.dst,
        resize=args.resize,
        shard_size=args.shard_size,
        quality=args.quality,
        labels_file=args.labels,
        workers=args.workers,
    )
    for split, n in written.items():
        print(f"{split}: {n} images -> {args.dst}/{split}-*.tar")
    return 0
