"""The `alexnet features | retrieve | codes | visualize` subcommands (paper §6.1)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def _images_of(index: dict, rows) -> list[list[torch.Tensor]]:
    """The stored images behind each list of index rows, re-read from the dataset the index was
    made from (opened once)."""
    from ..data import Decoding, open_dataset

    from ..errors import BadInput

    ds = open_dataset(str(index["data"]), str(index["split"]) or None, Decoding(128, 128))
    idx = index["indices"]
    if len(idx) and (idx.min() < 0 or idx.max() >= len(ds)):
        raise BadInput(f"the index names image {int(idx.max())}, but {index['data']} now holds {len(ds)}: "
                       "the data changed since `alexnet features`; extract the features again")
    return [[ds[int(idx[p])][0] for p in positions] for positions in rows]


def cmd_features(args) -> int:
    from .features import extract

    out = extract(args.weights, args.data, args.layer, args.out, args.split, args.batch_size, args.workers)
    with np.load(out) as z:
        print(f"{z['features'].shape[0]} images x {z['features'].shape[1]} {args.layer} features -> {out}")
    return 0


def _query_features(args, index: dict) -> tuple[np.ndarray, list[str], np.ndarray, list[torch.Tensor]]:
    from .features import layer_output, load_index

    if args.query_index:
        q = load_index(args.query_index, "--query-index")
        return q["features"], [str(p) for p in q["paths"]], q["labels"], None
    from ..data.decode import decode
    from ..evaluation.predict import image_files
    from ..interop.pretrained import load_pretrained

    model, card = load_pretrained(args.weights or str(index["weights"]))
    files = image_files(args.query)
    from ..data.sources import read_regular

    imgs = [decode(read_regular(f, str(f)), str(f), card.stored_size, card.stored_size) for f in files]
    with torch.no_grad():
        feats = layer_output(model, card.pipeline().eval(torch.stack(imgs)), str(index["layer"]))
    return feats.numpy(), [str(f) for f in files], np.full(len(files), -1), imgs


def cmd_retrieve(args) -> int:
    from ..errors import BadInput
    from .features import load_index, mean_average_precision, neighbours

    if bool(args.query) == bool(args.query_index):
        raise ValueError("give --query IMAGE... or --query-index Q.npz (one of them)")
    if args.out:
        from .figures import check_out

        check_out(args.out)
    index = load_index(args.index)
    qf, qnames, qlabels, qimgs = _query_features(args, index)
    feats, base = qf, index["features"]
    if qf.shape[1] != base.shape[1]:
        queries = f"--query-index {args.query_index}" if args.query_index else \
            f"the queries (with --weights {args.weights or index['weights']})"
        raise BadInput(f"{queries}: {qf.shape[1]}-d features, but --index {args.index} holds {base.shape[1]}-d "
                       "ones (made with other weights or another layer?)")
    if args.metric == "hamming":
        from .codes import load_codes

        if not args.codes:
            raise ValueError("--metric hamming needs --codes codes.pt (from `alexnet codes train`)")
        codes = load_codes(args.codes)
        if codes.dim != base.shape[1]:
            raise BadInput(f"--codes {args.codes}: made for {codes.dim}-d features, the index holds "
                           f"{base.shape[1]}-d ones")
        feats, base = codes.encode(qf), codes.encode(index["features"])
    dist, found = neighbours(feats, base, args.k, args.metric)
    classes = [str(c) for c in index["classes"]]
    label = lambda i: classes[i] if 0 <= i < len(classes) and classes[i] else str(i)  # noqa: E731
    for q, name in enumerate(qnames):
        print(name)
        for d, i in zip(dist[q], found[q]):
            print(f"  {d:10.4f}  {label(int(index['labels'][i])):<16} {index['paths'][i]}")
    if (qlabels >= 0).all() and (index["labels"] >= 0).all():
        m = mean_average_precision(qlabels, index["labels"][found])
        print(f"mAP@{args.k} ({args.metric}): {m:.4f} over {len(qnames)} queries")
    if args.out:
        from .figures import neighbours_grid

        shown = min(len(qnames), 8)
        queries = qimgs[:shown] if qimgs is not None else _images_of(load_index(args.query_index), [range(shown)])[0]
        rows = _images_of(index, found[:shown])
        caps = [[f"{label(int(index['labels'][i]))} {d:.1f}" for d, i in zip(dist[q], found[q])]
                for q in range(shown)]
        print(f"figure -> {neighbours_grid(queries, rows, caps, args.out)}")
    return 0


def cmd_codes(args) -> int:
    from .codes import save_codes, train_codes
    from .features import load_index

    index = load_index(args.index)
    if len(index["features"]) < 2:
        from ..errors import BadInput

        raise BadInput(f"--index {args.index}: holds {len(index['features'])} feature vector; codes are "
                       "learned from at least 2")
    model = train_codes(index["features"], args.bits, args.epochs)
    save_codes(model, args.out)
    print(f"{args.bits}-bit codes for {index['features'].shape[1]}-d {index['layer']} features -> {args.out}")
    return 0


def cmd_visualize(args) -> int:
    from . import figures

    figures.check_out(args.out)
    if args.what == "filters":
        from ..interop.pretrained import load_pretrained

        model, _ = load_pretrained(args.weights)
        conv1 = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        # the paper's towers: conv2's groups say how the first layer's kernels divide
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        groups = convs[1].groups if len(convs) > 1 else 1
        out = figures.filter_grid(conv1.weight, args.out, groups)
    elif args.what == "curves":
        path = Path(args.run) / "metrics.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no metrics (is {args.run} a run folder of `alexnet train`?)")
        from ..training.checkpoint import read_metrics

        out = figures.curves(read_metrics(path), args.out)
    elif args.what == "predictions":
        from ..evaluation.predict import predict

        results, _ = predict(args.images, args.weights, args.labels, 5, "center")
        out = figures.prediction_grid([r[2] for r in results], [r[1] for r in results], args.out,
                                      [Path(r[0]).name for r in results])
    else:  # neighbors: retrieve's figure
        ns = argparse.Namespace(index=args.index, query=args.images, query_index=None, k=args.k,
                                metric="euclidean", codes=None, out=args.out, weights=args.weights)
        return cmd_retrieve(ns)
    print(f"figure -> {out}")
    return 0


def cmd_report(args) -> int:
    from .report import build_report

    out = build_report(args.run, args.out, args.max_images, workers=args.workers)
    print(f"report -> {out}")
    return 0


def cmd_experiment(args) -> int:
    from . import experiments

    out = args.out or f"runs/experiments/{args.which}"
    if args.epochs is None:
        args.epochs = 30 if args.which == "relu-vs-tanh" else 8
    if args.which == "relu-vs-tanh":
        r = experiments.relu_vs_tanh(args.data, out, args.target_error, tuple(args.lrs), args.epochs,
                                     args.images, args.batch_size, args.workers)
        for act, b in r["best"].items():
            reached = f"{b['epochs']} epochs, {b['seconds']:.0f} s" if b["epochs"] else "not reached"
            print(f"{act:<5} best lr {b['lr']:g}: {args.target_error:.0%} training error in {reached}")
        if "epoch_ratio_tanh_over_relu" in r:
            print(f"tanh / ReLU: {r['epoch_ratio_tanh_over_relu']:.2f}x the epochs, "
                  f"{r['time_ratio_tanh_over_relu']:.2f}x the time (paper Fig. 1: about 6x)")
        print(f"figure -> {Path(out) / 'fig1.png'}")
    else:
        table = experiments.ablations(args.data, out, args.seeds, args.epochs, args.images,
                                      args.batch_size, args.workers)
        print("| configuration | test error (mean ± std) | paper |")
        print("|---|---|---|")
        for name, t in table.items():
            print(f"| {name} | {t['mean']:.2%} ± {t['std']:.2%} | {t['paper']} |")
    return 0


def add_parsers(sub) -> None:
    from ..argtypes import BATCH, COUNT, WORKERS, float_in, int_in
    from .codes import MAX_BITS

    s = sub.add_parser("features", help="fc6/fc7/pool5 features of a dataset into an .npz (§6.1)")
    s.add_argument("--weights", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--split", default="val")
    s.add_argument("--layer", default="fc7", choices=["fc6", "fc7", "pool5"])
    s.add_argument("--out", required=True)
    s.add_argument("--batch-size", type=BATCH, default=64)
    s.add_argument("--workers", type=WORKERS, default=2)
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("retrieve", help="nearest neighbours in a feature index (Fig. 4 right)")
    s.add_argument("--index", required=True)
    s.add_argument("--query", nargs="+", default=None, metavar="IMAGE")
    s.add_argument("--query-index", default=None)
    s.add_argument("--k", type=int_in(1, 10**6), default=8)
    s.add_argument("--metric", choices=["euclidean", "hamming"], default="euclidean")
    s.add_argument("--codes", default=None, help="codes.pt from `alexnet codes train` (for hamming)")
    s.add_argument("--weights", default=None, help="default: the weights the index was made with")
    s.add_argument("--out", default=None, metavar="GRID.png")
    s.set_defaults(func=cmd_retrieve)

    s = sub.add_parser("codes", help="binary codes for fast retrieval")
    csub = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = csub.add_parser("train", help="train the autoencoder on an index's features")
    c.add_argument("--index", required=True)
    c.add_argument("--bits", type=int_in(1, MAX_BITS), default=256)
    c.add_argument("--epochs", type=int_in(1, 10**6), default=30)
    c.add_argument("--out", required=True)
    c.set_defaults(func=cmd_codes)

    s = sub.add_parser("visualize", help="the paper's pictures")
    vsub = s.add_subparsers(dest="what", required=True, metavar="WHAT")
    v = vsub.add_parser("filters", help="conv1 kernels, towers side by side (Fig. 3)")
    v.add_argument("--weights", required=True)
    v.add_argument("--out", required=True)
    v.set_defaults(func=cmd_visualize)
    v = vsub.add_parser("curves", help="training/validation error vs epoch from RUN/metrics.csv")
    v.add_argument("run")
    v.add_argument("--out", required=True)
    v.set_defaults(func=cmd_visualize)
    v = vsub.add_parser("predictions", help="images with their top-5 bars (Fig. 4 left)")
    v.add_argument("images", nargs="+")
    v.add_argument("--weights", required=True)
    v.add_argument("--labels", default=None)
    v.add_argument("--out", required=True)
    v.set_defaults(func=cmd_visualize)
    v = vsub.add_parser("neighbors", help="query images beside their nearest neighbours (Fig. 4 right)")
    v.add_argument("images", nargs="+")
    v.add_argument("--index", required=True)
    v.add_argument("--weights", default=None)
    v.add_argument("--k", type=int_in(1, 10**6), default=6)
    v.add_argument("--out", required=True)
    v.set_defaults(func=cmd_visualize)

    s = sub.add_parser("report", help="one self-contained HTML page about a training run")
    s.add_argument("run")
    s.add_argument("--out", required=True, metavar="REPORT.html")
    s.add_argument("--max-images", type=COUNT, default=2000, help="validation images for the confusion matrix")
    s.add_argument("--workers", type=WORKERS, default=2)
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("experiment", help="the paper's claims at small scale (Fig. 1, ablations)")
    s.add_argument("which", choices=["relu-vs-tanh", "ablations"])
    s.add_argument("--data", default="cifar10")
    s.add_argument("--out", default=None, help="folder of run folders (default runs/experiments/WHICH)")
    s.add_argument("--target-error", type=float_in(0.0, 1.0), default=0.25,
                   help="relu-vs-tanh: training error to reach")
    s.add_argument("--lrs", type=float_in(0.0, 1e3, open_low=True), nargs="+", default=[0.01, 0.03, 0.1],
                   help="relu-vs-tanh sweep")
    s.add_argument("--epochs", type=int_in(1, 10**6), default=None, help="at most (relu-vs-tanh: 30; ablations: 8)")
    s.add_argument("--images", type=COUNT, default=None, help="images per epoch (default: all)")
    s.add_argument("--seeds", type=int_in(1, 1000), default=3, help="ablations: runs per configuration")
    s.add_argument("--batch-size", type=BATCH, default=128)
    s.add_argument("--workers", type=WORKERS, default=2)
    s.set_defaults(func=cmd_experiment)
