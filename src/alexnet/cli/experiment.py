"""`alexnet experiment`: the paper's claims re-measured at small scale on CIFAR-10
(analysis/experiments.py): §3.3's table, ReLU vs tanh (Fig. 1, §3.1) and the ablations."""

from __future__ import annotations

from pathlib import Path

from ..analysis import experiments
from . import argtypes as T
from .options import add, batch_size, command, workers

# per run, at most, unless --epochs says (None: the cuda-convnet preset's own); runs per configuration
EPOCHS = {"table": None, "relu-vs-tanh": 30, "ablations": 8}
SEEDS = {"table": 1, "ablations": 3}


def register(sub) -> None:
    s = command(
        sub,
        "experiment",
        "the paper's claims at small scale (Fig. 1, ablations)",
        "The paper's design claims re-measured on CIFAR-10: ReLU vs tanh training speed (Fig. 1,\n"
        "§3.1), or the test error without LRN, overlapping pooling, dropout or PCA noise.",
        "alexnet experiment relu-vs-tanh --data /path/to/cifar10-jpeg.tar --images 10000 --epochs 30",
        run,
    )
    add(
        s,
        "which",
        choices=list(EPOCHS),
        help="table: §3.3's CIFAR-10 table (the 13 % and 11 % nets of footnote 3, preset cuda-convnet, "
        "10-view test); relu-vs-tanh: epochs to a training error (Fig. 1); ablations: §3.3, §3.4, "
        "§4.1, §4.2 changed in turn",
    )
    g = s.add_argument_group("data and output")
    add(
        g,
        "--data",
        default="cifar10",
        help="CIFAR-10: the archive, a folder or .tar of its JPEGs, or cifar10 (downloaded)",
    )
    add(
        g,
        "--out",
        default=None,
        metavar="DIR",
        default_text="runs/experiments/WHICH",
        help="folder of run folders; existing runs are read back or resumed",
    )
    add(
        g,
        "--images",
        type=T.COUNT,
        default=None,
        metavar="N",
        default_text="all 50,000",
        help="training images per epoch",
    )
    g = s.add_argument_group("relu-vs-tanh")
    add(
        g,
        "--target-error",
        type=T.float_in(0.0, 1.0),
        default=0.25,
        metavar="X",
        help="the training error to reach (Fig. 1: 0.25)",
    )
    add(
        g,
        "--lrs",
        type=T.float_in(0.0, 1e3, open_low=True),
        nargs="+",
        default=None,
        metavar="LR",
        default_text=", ".join(
            f"{net} {' '.join(map(str, lrs))}" for net, lrs in experiments.DEFAULT_LRS.items()
        ),
        help="learning rates tried; each activation is judged at its fastest, as in the paper",
    )
    g = s.add_argument_group("table and ablations")
    add(
        g,
        "--seeds",
        type=T.int_in(1, 1000),
        default=None,
        metavar="N",
        default_text=", ".join(f"{k} {v}" for k, v in SEEDS.items()),
        help="runs per configuration",
    )
    g = s.add_argument_group("all")
    add(
        g,
        "--net",
        choices=list(experiments.NETS),
        default="cifar_convnet",
        help="cifar_convnet (a stand-in for Fig. 1's unspecified net) or cuda-convnet (§3.3's conv-local "
        "net, footnote 3: the 13 % net for relu-vs-tanh)",
    )
    add(
        g,
        "--epochs",
        type=T.int_in(1, 10**6),
        default=None,
        metavar="N",
        default_text="table: the preset's 80, relu-vs-tanh 30, ablations 8",
        help="epochs per run, at most",
    )
    batch_size(g, 128, help="images per step (§5: 128)")
    workers(g)


def run(args) -> int:
    out = args.out or f"runs/experiments/{args.which}"
    epochs = args.epochs or EPOCHS[args.which]
    seeds = args.seeds or SEEDS.get(args.which)
    if args.which == "table":
        table = experiments.cuda_convnet_table(args.data, out, seeds, epochs, args.workers)
        print("| net (§3.3, footnote 3) | test error, 10 views | centre crop | epochs | CPU hours |")
        print("|---|---|---|---|---|")
        for model, t in table.items():
            for r in t["runs"]:
                print(
                    f"| {model} seed {r['seed']} (paper: {t['paper']}) | {r['multiview_err']:.2%} | "
                    f"{r['center_err']:.2%} | {r['epochs']} | {r['hours']:.1f} |"
                )
        print(f"table -> {Path(out) / 'table.json'}")
    elif args.which == "relu-vs-tanh":
        r = experiments.relu_vs_tanh(
            args.data,
            out,
            args.target_error,
            args.lrs and tuple(args.lrs),
            epochs,
            args.images,
            args.batch_size,
            args.workers,
            net=args.net,
        )
        for act, b in r["best"].items():
            reached = (
                f"reached in {b['epochs']} epochs, {b['seconds']:.0f} s" if b["epochs"] else "not reached"
            )
            print(f"{act:<5} best lr {b['lr']:g}: {args.target_error:.0%} training error {reached}")
        if "epoch_ratio_tanh_over_relu" in r:
            print(
                f"tanh / ReLU: {r['epoch_ratio_tanh_over_relu']:.2f}x the epochs, "
                f"{r['time_ratio_tanh_over_relu']:.2f}x the time (paper Fig. 1: about 6x)"
            )
        print(f"figure -> {Path(out) / 'fig1.png'}")
    else:
        table = experiments.ablations(
            args.data, out, seeds, epochs, args.images, args.batch_size, args.workers, net=args.net
        )
        print("| configuration | test error (mean ± std) | paper |")
        print("|---|---|---|")
        for name, t in table.items():
            print(f"| {name} | {t['mean']:.2%} ± {t['std']:.2%} | {t['paper']} |")
    return 0
