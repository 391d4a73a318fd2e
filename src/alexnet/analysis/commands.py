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
    itself = None
    if args.query_index:  # leave-one-out: a query that is in the index is not counted as its own match
        where = {str(p): i for i, p in enumerate(index["paths"])}
        itself = [where.get(str(n), -1) for n in qnames]
    dist, found = neighbours(feats, base, args.k, args.metric, itself)
    classes = [str(c) for c in index["classes"]]
    label = lambda i: classes[i] if 0 <= i < len(classes) and classes[i] else str(i)  # noqa: E731
    from ..errors import shown

    for q, name in enumerate(qnames):  # names and paths from the index: strangers' text, escaped
        print(shown(name))
        for d, i in zip(dist[q], found[q]):
            print(f"  {d:10.4f}  {shown(label(int(index['labels'][i]))):<16} {shown(index['paths'][i])}")
    if (qlabels >= 0).all() and (index["labels"] >= 0).all():
        m = mean_average_precision(qlabels, index["labels"][found])
        print(f"mAP@{found.shape[1]} ({args.metric}): {m:.4f} over {len(qnames)} queries")
    if args.out:
        from .figures import neighbours_grid

        few = min(len(qnames), 8)
        queries = qimgs[:few] if qimgs is not None else _images_of(load_index(args.query_index), [range(few)])[0]
        rows = _images_of(index, found[:few])
        caps = [[f"{label(int(index['labels'][i]))} {d:.1f}" for d, i in zip(dist[q], found[q])]
                for q in range(few)]
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
    from ..errors import shown

    print(f"{args.bits}-bit codes for {index['features'].shape[1]}-d {shown(index['layer'])} features -> {args.out}")
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
            reached = (f"reached in {b['epochs']} epochs, {b['seconds']:.0f} s" if b["epochs"]
                       else "not reached")
            print(f"{act:<5} best lr {b['lr']:g}: {args.target_error:.0%} training error {reached}")
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
    from ..cli_parser import add, command
    from .codes import MAX_BITS

    s = command(sub, "features", "fc6/fc7/pool5 features of a dataset into an .npz (§6.1)",
                "A layer's activations for every image of a dataset (§6.1: the 4096-d fc7 vector), with\n"
                "labels and paths, written as an .npz index that `retrieve` and `codes` read.",
                "alexnet features --weights caffenet --data /path/to/imagenet --split val --out val_fc7.npz",
                cmd_features)
    add(s, "--weights", required=True, help="a checkpoint, a weights file or a name from `alexnet weights`")
    add(s, "--data", required=True, help="a folder, .tar, shards or dataset name")
    add(s, "--split", default="val", help="the split to index")
    add(s, "--layer", default="fc7", choices=["fc6", "fc7", "pool5"],
        help="the layer whose output is the feature (§6.1: fc7, the last 4096-d hidden layer)")
    add(s, "--out", required=True, metavar="INDEX.npz", help="the index file to write")
    add(s, "--batch-size", type=BATCH, default=64, metavar="N", help="images per forward pass")
    add(s, "--workers", type=WORKERS, default=2, metavar="N", help="data-loading processes")

    s = command(sub, "retrieve", "nearest neighbours in a feature index (Fig. 4 right)",
                "The images of an index nearest to each query by Euclidean distance of their features\n"
                "(§6.1, Fig. 4 right) or Hamming distance of binary codes; mAP when the queries are labelled.",
                "alexnet retrieve --index train_fc7.npz --query photo.jpg --k 6 --out neighbours.png", cmd_retrieve)
    g = s.add_argument_group("queries (give one of the two)")
    add(g, "--query", nargs="+", default=None, metavar="IMAGE", default_text="none",
        help="query image files or folders, run through the index's network")
    add(g, "--query-index", default=None, metavar="Q.npz", default_text="none",
        help="an index from `alexnet features` whose vectors are the queries (mAP when labelled)")
    g = s.add_argument_group("search")
    add(g, "--index", required=True, metavar="INDEX.npz", help="the index searched, from `alexnet features`")
    add(g, "--k", type=int_in(1, 10**6), default=8, metavar="K", help="neighbours per query")
    add(g, "--metric", choices=["euclidean", "hamming"], default="euclidean",
        help="euclidean on the features (§6.1), or hamming on binary codes (needs --codes)")
    add(g, "--codes", default=None, metavar="CODES.pt", default_text="none",
        help="the autoencoder from `alexnet codes train`, for --metric hamming")
    add(g, "--weights", default=None, default_text="the weights the index was made with",
        help="network for --query images")
    add(g, "--out", default=None, metavar="GRID.png", default_text="no figure",
        help="draw the first 8 queries beside their neighbours (Fig. 4, right)")

    s = command(sub, "codes", "binary codes for fast retrieval",
                "Short binary codes for fast retrieval (§6.1): an autoencoder that compresses the\n"
                "features of an index, compared by Hamming distance in `retrieve --metric hamming`.",
                "alexnet codes train --index train_fc7.npz --bits 256 --out codes.pt")
    csub = s.add_subparsers(dest="action", required=True, metavar="ACTION", help="what to do")
    c = command(csub, "train", "train the autoencoder on an index's features",
                "Train the code autoencoder on the feature vectors of an index (§6.1).",
                "alexnet codes train --index train_fc7.npz --bits 256 --epochs 30 --out codes.pt", cmd_codes)
    add(c, "--index", required=True, metavar="INDEX.npz", help="an index from `alexnet features`")
    add(c, "--bits", type=int_in(1, MAX_BITS), default=256, metavar="N", help="code length in bits")
    add(c, "--epochs", type=int_in(1, 10**6), default=30, metavar="N", help="passes over the features")
    add(c, "--out", required=True, metavar="CODES.pt", help="where to write the autoencoder")

    s = command(sub, "visualize", "the paper's pictures",
                "The paper's figures from a network or a run: conv1 filters (Fig. 3), predictions and\n"
                "neighbours (Fig. 4), training curves.", "alexnet visualize filters --weights caffenet --out fig3.png")
    vsub = s.add_subparsers(dest="what", required=True, metavar="WHAT", help="which picture")
    v = command(vsub, "filters", "conv1 kernels, towers side by side (Fig. 3)",
                "The first layer's kernels as an image grid, one block per tower (Fig. 3).",
                "alexnet visualize filters --weights caffenet --out fig3.png", cmd_visualize)
    add(v, "--weights", required=True, help="a checkpoint, a weights file or a name from `alexnet weights`")
    add(v, "--out", required=True, metavar="OUT.png", help="the image to write")
    v = command(vsub, "curves", "training/validation error vs epoch from RUN/metrics.csv",
                "Training and validation error against epoch, from a run folder's metrics.csv.",
                "alexnet visualize curves runs/quick --out curves.png", cmd_visualize)
    add(v, "run", help="a run folder of `alexnet train`")
    add(v, "--out", required=True, metavar="OUT.png", help="the image to write")
    v = command(vsub, "predictions", "images with their top-5 bars (Fig. 4 left)",
                "Images beside the bars of their top-5 classes (Fig. 4, left).",
                "alexnet visualize predictions photos/ --weights caffenet --out fig4_left.png", cmd_visualize)
    add(v, "images", nargs="+", metavar="IMAGE", help="image files or folders")
    add(v, "--weights", required=True, help="a checkpoint, a weights file or a name from `alexnet weights`")
    add(v, "--labels", default=None, metavar="FILE", default_text="the card's names, or ImageNet's for "
        "1000-class weights", help="class names: synset_words.txt or imagenet_class_index.json")
    add(v, "--out", required=True, metavar="OUT.png", help="the image to write")
    v = command(vsub, "neighbors", "query images beside their nearest neighbours (Fig. 4 right)",
                "Query images beside their nearest neighbours in an index by Euclidean distance of\n"
                "features (§6.1, Fig. 4 right).",
                "alexnet visualize neighbors photo.jpg --index train_fc7.npz --k 6 --out fig4_right.png",
                cmd_visualize)
    add(v, "images", nargs="+", metavar="IMAGE", help="query image files or folders")
    add(v, "--index", required=True, metavar="INDEX.npz", help="the index searched, from `alexnet features`")
    add(v, "--weights", default=None, default_text="the weights the index was made with",
        help="network for the query images")
    add(v, "--k", type=int_in(1, 10**6), default=6, metavar="K", help="neighbours per query (Fig. 4: 6)")
    add(v, "--out", required=True, metavar="OUT.png", help="the image to write")

    s = command(sub, "report", "one self-contained HTML page about a training run",
                "One self-contained HTML page about a run: its settings, curves, final errors, confusion\n"
                "matrix, conv1 filters and sample predictions.",
                "alexnet report runs/quick --out runs/quick/report.html", cmd_report)
    add(s, "run", help="a run folder of `alexnet train`")
    add(s, "--out", required=True, metavar="REPORT.html", help="the page to write")
    add(s, "--max-images", type=COUNT, default=2000, metavar="N", help="validation images for the confusion matrix")
    add(s, "--workers", type=WORKERS, default=2, metavar="N", help="data-loading processes")

    s = command(sub, "experiment", "the paper's claims at small scale (Fig. 1, ablations)",
                "The paper's design claims re-measured on CIFAR-10: ReLU vs tanh training speed (Fig. 1,\n"
                "§3.1), or the test error without LRN, overlapping pooling, dropout or PCA noise.",
                "alexnet experiment relu-vs-tanh --data /path/to/cifar10-jpeg.tar --images 10000 --epochs 30",
                cmd_experiment)
    add(s, "which", choices=["relu-vs-tanh", "ablations"],
        help="relu-vs-tanh: epochs to a training error (Fig. 1); ablations: §3.3, §3.4, §4.1, §4.2 removed in turn")
    g = s.add_argument_group("data and output")
    add(g, "--data", default="cifar10", help="CIFAR-10: the archive, a folder or .tar of its JPEGs, or "
        "cifar10 (downloaded)")
    add(g, "--out", default=None, metavar="DIR", default_text="runs/experiments/WHICH",
        help="folder of run folders; existing runs are read back or resumed")
    add(g, "--images", type=COUNT, default=None, metavar="N", default_text="all 50,000",
        help="training images per epoch")
    g = s.add_argument_group("relu-vs-tanh")
    add(g, "--target-error", type=float_in(0.0, 1.0), default=0.25, metavar="X",
        help="the training error to reach (Fig. 1: 0.25)")
    add(g, "--lrs", type=float_in(0.0, 1e3, open_low=True), nargs="+", default=[0.01, 0.03, 0.1], metavar="LR",
        help="learning rates tried; each activation is judged at its fastest, as in the paper")
    g = s.add_argument_group("ablations")
    add(g, "--seeds", type=int_in(1, 1000), default=3, metavar="N", help="runs per configuration")
    g = s.add_argument_group("both")
    add(g, "--epochs", type=int_in(1, 10**6), default=None, metavar="N", default_text="relu-vs-tanh 30, ablations 8",
        help="epochs per run, at most")
    add(g, "--batch-size", type=BATCH, default=128, metavar="N", help="images per step (§5: 128)")
    add(g, "--workers", type=WORKERS, default=2, metavar="N", help="data-loading processes")
