"""`alexnet stats`: a training set's mean image (§2), channel mean/std and RGB eigen-pairs (§4.1)."""

from __future__ import annotations

from ..data import Decoding, compute_stats, open_dataset, save_stats
from . import argtypes as T
from .options import add, batch_size, command, data, data_labels, split, workers


def register(sub) -> None:
    s = command(
        sub,
        "stats",
        "mean image, channel mean/std and RGB eigen-pairs of a training set",
        "The training set's mean image (§2), channel mean and std, and the eigenvectors and\n"
        "eigenvalues of its RGB covariance (the PCA colour noise of §4.1), into one .pt file.",
        "alexnet stats --data /path/to/imagenet --out imagenet_stats.pt",
        run,
    )
    g = s.add_argument_group("data")
    data(g)
    split(g, "train")
    data_labels(g)
    add(
        g,
        "--resize",
        type=T.int_in(0, 8192),
        default=256,
        metavar="N",
        help="images rescaled to this shorter side and "
        "centre-cropped square, as stored for training (§2); 0: native size (CIFAR)",
    )
    g = s.add_argument_group("output and run")
    add(g, "--out", required=True, metavar="FILE.pt", help="where to write the statistics")
    batch_size(g, 256)
    workers(g)


def run(args) -> int:
    ds = open_dataset(
        args.data, args.split, Decoding(args.resize or None, args.resize or None), labels_file=args.labels
    )
    stats = compute_stats(ds, args.batch_size, args.workers)
    stats.update(source=args.data, size=args.resize or None)
    save_stats(stats, args.out)
    ev, mean, std = (", ".join(f"{v:.4f}" for v in stats[k].tolist()) for k in ("eigval", "mean", "std"))
    print(
        f"{stats['n_images']} images ({stats['skipped']} skipped) -> {args.out}\n"
        f"mean [{mean}]  std [{std}]  eigval [{ev}]  (pixels in [0, 1])"
    )
    return 0
