"""The measurement behind `finetune`'s defaults (training/recipes.py FINETUNE): a net we trained
on five CIFAR-10 classes, fine-tuned on a small folder of the other five with each candidate
(learning rate, the new output layer's multiplier, the layers trained), against the same net
from scratch. Real pretrained files cannot be downloaded here; this is the transfer we can make.

    python benchmarks/finetune_defaults.py --tar ../shared/data/cifar10-jpeg.tar --out /tmp/ft
        [--a-train 1000] [--b-train 100] [--b-val 300] [--epochs 8] [--seeds 0 1]

A: airplane, automobile, bird, cat, deer (--a-train images each, cifar10-quick for 5 epochs);
B: dog, frog, horse, ship, truck (--b-train training images each, --b-val test images each as
validation). Prints, per candidate and seed, the first and last training loss, the best and last
validation error on B, and the seconds it took.
"""

from __future__ import annotations

import argparse
import csv
import math
import tarfile
import time
from pathlib import Path

import torch

from alexnet.precision import cpu_name
from alexnet.training import Trainer, build_config

A = ("airplane", "automobile", "bird", "cat", "deer")
B = ("dog", "frog", "horse", "ship", "truck")


def cut(tar: str, out: Path, classes, n_train: int, n_val: int) -> Path:
    """out/{train,val}/<class>/*.jpg: the first n images of each class of the tar's splits."""
    if (out / "val").exists():
        return out
    want = {("train", c): n_train for c in classes} | {("test", c): n_val for c in classes}
    with tarfile.open(tar) as t:
        for m in t:
            parts = m.name.split("/")  # cifar10/<split>/<class>/NNNN.jpg
            if len(parts) != 4 or not m.isfile() or want.get((parts[1], parts[2]), 0) <= 0:
                continue
            want[parts[1], parts[2]] -= 1
            dst = out / ("val" if parts[1] == "test" else "train") / parts[2] / parts[3]
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(t.extractfile(m).read())
    return out


def fit(run: Path, **kw) -> dict:
    t0 = time.time()
    cfg = build_config(None, None, run_dir=str(run), workers=0, **kw)
    Trainer(cfg, progress=False, overwrite=True).fit()
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    steps = list(csv.DictReader(open(run / "steps.csv")))
    return {
        "lr": cfg.lr,
        "lr_mult": cfg.lr_mult,
        "layers": cfg.train_layers,
        "seconds": time.time() - t0,
        "first_loss": float(steps[0]["loss"]) if steps else math.nan,
        "last_loss": float(rows[-1]["train_loss"]),
        "best_err": min(float(r["val_top1_err"]) for r in rows),
        "last_err": float(rows[-1]["val_top1_err"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tar", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--a-train", type=int, default=1000)
    p.add_argument("--b-train", type=int, default=100)
    p.add_argument("--b-val", type=int, default=300)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = p.parse_args()
    a = cut(args.tar, args.out / "A", A, args.a_train, 200)
    b = cut(args.tar, args.out / "B", B, args.b_train, args.b_val)
    print(f"# {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    pre = args.out / "pre_A"
    if not (pre / "best.pt").exists():
        r = fit(pre, model="cifar_convnet", data=str(a), epochs=5, step_size=4)
        print(
            f"# pretrained on A ({len(A)} x {args.a_train} images, cifar10-quick, 5 epochs): "
            f"val error {r['best_err']:.3f}, {r['seconds']:.0f} s"
        )
    weights = str(pre / "best.pt")
    recipe = build_config(None, None, model="cifar_convnet", data=str(b)).lr
    # (name, settings): every setting given, so the candidates do not depend on FINETUNE
    candidates = [
        ("recipe (old finetune)", dict(lr=recipe, lr_mult={}, train_layers="all")),
        ("lr/10, all", dict(lr=recipe / 10, lr_mult={}, train_layers="all")),
        ("lr/10, head x10, all", dict(lr=recipe / 10, lr_mult={"fc4": 10.0}, train_layers="all")),
        ("lr/10, head x10, head only", dict(lr=recipe / 10, lr_mult={"fc4": 10.0}, train_layers="fc4")),
        ("lr/100, head x100, all", dict(lr=recipe / 100, lr_mult={"fc4": 100.0}, train_layers="all")),
    ]
    common = dict(
        model="cifar_convnet",
        data=str(b),
        epochs=args.epochs,
        batch_size=args.batch_size,
        step_size=max(1, args.epochs // 2),
    )
    print(
        "candidate | seed | lr | lr_mult | layers | first loss | last train loss | best val err | "
        "last val err | s"
    )
    for seed in args.seeds:
        for name, kw in candidates:
            r = fit(
                args.out / f"ft-{seed}-{name.replace(' ', '_').replace('/', '')}",
                init_from=weights,
                seed=seed,
                **common,
                **kw,
            )
            print(
                f"{name} | {seed} | {r['lr']:g} | {r['lr_mult']} | {r['layers']} | {r['first_loss']:.3f} | "
                f"{r['last_loss']:.3f} | {r['best_err']:.3f} | {r['last_err']:.3f} | {r['seconds']:.0f}",
                flush=True,
            )
        r = fit(args.out / f"scratch-{seed}", seed=seed, **common)
        print(
            f"from scratch | {seed} | {r['lr']:g} | - | all | {r['first_loss']:.3f} | {r['last_loss']:.3f} | "
            f"{r['best_err']:.3f} | {r['last_err']:.3f} | {r['seconds']:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
