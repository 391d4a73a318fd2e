"""The paper's design claims, re-measured at small scale. Every configuration is a run folder of
`alexnet train` under OUT/, so an interrupted experiment picks up where it stopped: finished runs
are read back, unfinished ones resumed from their last.pt."""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path

from ..data import Decoding, compute_stats, open_dataset, save_stats
from ..evaluation.evaluate import evaluate
from ..jsonio import write_json
from ..training import Trainer, build_config, resume
from ..training.config import PRESETS
from .figures import error_curves, line_chart


def shared_stats(data: str, out: Path, workers: int, progress: bool, resize: int | None = None) -> str:
    """One statistics pass for all configurations of an experiment (they share the data), at the
    size the images are stored at (None: native)."""
    path = out / ("stats.pt" if resize is None else f"stats-{resize}.pt")
    if not path.exists():
        ds = open_dataset(data, "train", Decoding(resize, resize))
        save_stats(compute_stats(ds, workers=workers, progress=progress), path)
    return str(path)


def run_once(run_dir: Path, progress: bool = True, **cfg) -> list[dict]:
    """Train (or finish, or just read) one configuration; returns its metrics rows."""
    if not (run_dir / "summary.json").exists():
        if (run_dir / "last.pt").exists():
            resume(str(run_dir), progress=progress)
        else:
            # no last.pt: whatever a killed start left there holds nothing worth keeping
            Trainer(
                build_config(None, None, run_dir=str(run_dir), **cfg), progress=progress, overwrite=True
            ).fit()
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


NETS = ("cifar_convnet", "cuda-convnet")  # today's stand-in, and §3.3's own net (footnote 3)
DEFAULT_LRS = {"cifar_convnet": (0.01, 0.03, 0.1), "cuda-convnet": (0.001, 0.003)}


def _fig1_config(
    net: str,
    data: str,
    activation: str,
    lr: float,
    epochs: int,
    target: float,
    images: int | None,
    batch_size: int,
    workers: int,
) -> dict:
    # Fig. 1: "no regularization of any kind": no weight decay, no dropout, no augmentation, no LRN
    common = dict(
        data=data,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=0.9,
        weight_decay=0.0,
        schedule="constant",
        flip=False,
        pca_std=0.0,
        mean="image",
        workers=workers,
        target_train_error=target,
        limit_batches=None if images is None else -(-images // batch_size),
    )
    if net == "cifar_convnet":
        return dict(
            model="cifar_convnet",
            model_kw={"activation": activation, "lrn": False},
            resize=None,
            crop=32,
            update_rule="torch",
            pixel_scale=1.0,
            **common,
        )
    # the 13 % net (no rnorm) as cuda-convnet trains it (update rule, epsB = 2 epsW, 0-255 pixels),
    # on whole images brought to its 24x24 input: no crops, so no augmentation
    return dict(
        model="cifar_local_13pct",
        model_kw={"activation": activation},
        resize=24,
        crop=24,
        update_rule="paper",
        bias_lr_mult=2.0,
        bias_decay=False,
        pixel_scale=255.0,
        precision="fp32",
        **common,
    )


def relu_vs_tanh(
    data: str,
    out: str | Path,
    target: float = 0.25,
    lrs=None,
    epochs: int = 30,
    images: int | None = None,
    batch_size: int = 128,
    workers: int = 2,
    progress: bool = True,
    net: str = "cifar_convnet",
) -> dict:
    """Epochs (and seconds) to `target` training error for each activation and learning rate;
    each activation judged at its own fastest learning rate, as in the paper. `net`: cifar_convnet
    (a stand-in: the paper does not specify Fig. 1's net) or cuda-convnet (§3.3's 13 % net)."""
    if net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")
    lrs = DEFAULT_LRS[net] if lrs is None else lrs
    out = Path(out)
    stats = shared_stats(
        data, out, workers, progress, _fig1_config(net, data, "relu", 0.1, 1, 0, None, 1, 0)["resize"]
    )
    results = {}
    for act in ("relu", "tanh"):
        for lr in lrs:
            rows = run_once(
                out / f"{act}-lr{lr:g}",
                progress,
                stats=stats,
                **_fig1_config(net, data, act, lr, epochs, target, images, batch_size, workers),
            )
            errs = [float(r["train_top1_err"]) for r in rows]
            hit = next((i for i, e in enumerate(errs) if e <= target), None)
            secs = sum(float(r["seconds"]) for r in rows[: (hit or len(rows) - 1) + 1])
            results[(act, lr)] = dict(curve=errs, epochs=None if hit is None else hit + 1, seconds=secs)
    best = {}
    for act in ("relu", "tanh"):
        runs = [(lr, r) for (a, lr), r in results.items() if a == act]
        reached = [(r["epochs"], r["seconds"], lr) for lr, r in runs if r["epochs"] is not None]
        lr = min(reached)[2] if reached else min(runs, key=lambda t: t[1]["curve"][-1])[0]
        best[act] = dict(lr=lr, **results[(act, lr)])
    summary = {
        "net": net,
        "target_train_error": target,
        "images_per_epoch": images,
        "best": best,
        "all": {f"{a}-lr{lr:g}": r for (a, lr), r in results.items()},
    }
    if best["relu"]["epochs"] and best["tanh"]["epochs"]:
        summary["epoch_ratio_tanh_over_relu"] = best["tanh"]["epochs"] / best["relu"]["epochs"]
        summary["time_ratio_tanh_over_relu"] = best["tanh"]["seconds"] / best["relu"]["seconds"]
    write_json(out / "summary.json", summary)
    error_curves(
        {
            f"ReLU (lr {best['relu']['lr']:g})": best["relu"]["curve"],
            f"tanh (lr {best['tanh']['lr']:g})": best["tanh"]["curve"],
        },
        target,
        out / "fig1.png",
    )
    return summary


ABLATIONS = {  # name: (model_kw, data overrides), relative to the full model
    "full": ({}, {}),
    "no LRN (§3.3)": ({"lrn": False}, {}),
    "non-overlapping pool 2/2 (§3.4)": ({"pool_size": 2}, {}),
    "no dropout (§4.2)": ({"dropout": 0.0}, {}),
    "no PCA colour noise (§4.1)": ({}, {"pca_std": 0.0}),
}
PAPER = {
    "no LRN (§3.3)": "+1.4 % top-1 (ImageNet); 11 % -> 13 % (CIFAR-10)",
    "non-overlapping pool 2/2 (§3.4)": "+0.4 % top-1 / +0.3 % top-5",
    "no dropout (§4.2)": "substantial overfitting; half the iterations to converge",
    "no PCA colour noise (§4.1)": "+1 % top-1",
}


# §3.3's own net as cuda-convnet trains it (preset cuda-convnet), with one ingredient changed:
# the cfg has rnorm and overlapping pools but neither dropout nor PCA noise, so those two are added
LOCAL_ABLATIONS = {  # name: (model, model_kw, recipe overrides)
    "11 % net (rnorm, pool 3/2)": ("cifar_local_11pct", {}, {}),
    "no rnorm (§3.3: the 13 % net)": ("cifar_local_13pct", {}, {}),
    "non-overlapping pool 2/2 (§3.4)": ("cifar_local_11pct", {"pool_size": 2}, {}),
    "with dropout 0.5 before fc (§4.2)": ("cifar_local_11pct", {"dropout": 0.5}, {}),
    "with PCA colour noise (§4.1)": ("cifar_local_11pct", {}, {"pca_std": 0.1}),
}
LOCAL_PAPER = {
    "no rnorm (§3.3: the 13 % net)": "11 % -> 13 % (CIFAR-10, §3.3); +1.4 % top-1 (ImageNet)",
    "non-overlapping pool 2/2 (§3.4)": "+0.4 % top-1 / +0.3 % top-5 (ImageNet)",
    "with dropout 0.5 before fc (§4.2)": "less overfitting, twice the iterations to converge",
    "with PCA colour noise (§4.1)": "-1 % top-1 (ImageNet)",
}


def _ablation_runs(net: str, data: str, epochs: int, images: int | None, batch_size: int, workers: int):
    """(name, config without seed) per row; `stats` is filled in by the caller."""
    limit = None if images is None else -(-images // batch_size)
    common = dict(data=data, epochs=epochs, batch_size=batch_size, workers=workers, limit_batches=limit)
    if net == "cifar_convnet":
        for name, (model_kw, over) in ABLATIONS.items():
            kw = {"lrn": True, "pool_size": 3, "dropout": 0.5, **model_kw}
            cfg = dict(
                model="cifar_convnet",
                model_kw=kw,
                resize=None,
                crop=32,
                lr=0.05,
                schedule="step",
                step_size=max(1, epochs * 2 // 3),
                update_rule="torch",
                weight_decay=5e-4,
                mean="image",
                pixel_scale=1.0,
                flip=True,
                pca_std=0.1,
                **common,
            )
            yield name, {**cfg, **over}, PAPER.get(name, "")
        return
    # the preset's shape of schedule (÷10 after 3/4 of the epochs, again after 7/8), at this length
    drops = sorted({max(1, round(epochs * 3 / 4)), max(1, round(epochs * 7 / 8))})
    for name, (model, model_kw, over) in LOCAL_ABLATIONS.items():
        cfg = {**PRESETS["cuda-convnet"], "model": model, "model_kw": model_kw, "milestones": drops, **common}
        yield name, {**cfg, **over}, LOCAL_PAPER.get(name, "")


def ablations(
    data: str,
    out: str | Path,
    seeds: int = 3,
    epochs: int = 8,
    images: int | None = None,
    batch_size: int = 128,
    workers: int = 2,
    progress: bool = True,
    net: str = "cifar_convnet",
) -> dict:
    """Test error of a CIFAR-10 net with each of the paper's ingredients changed in turn: the
    stand-in cifar_convnet, or §3.3's own net (net="cuda-convnet")."""
    if net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")
    out = Path(out)
    stats = shared_stats(data, out, workers, progress)
    table = {}
    for name, cfg, paper in _ablation_runs(net, data, epochs, images, batch_size, workers):
        errs = []
        for seed in range(seeds):
            words = "".join(ch if ch.isalnum() else "-" for ch in name.split(" (")[0])
            slug = re.sub("-+", "-", words).strip("-")
            rows = run_once(out / f"{slug}-seed{seed}", progress, **cfg, seed=seed, stats=stats)
            errs.append(float(rows[-1]["val_top1_err"]))
        table[name] = dict(
            mean=statistics.mean(errs),
            std=statistics.stdev(errs) if len(errs) > 1 else 0.0,
            errors=errs,
            paper=paper,
        )
    write_json(out / "summary.json", table)
    return table


TABLE_NETS = {
    "cifar_local_13pct": "13 % (no normalisation)",
    "cifar_local_11pct": "11 % (with normalisation)",
}


def cuda_convnet_table(
    data: str,
    out: str | Path,
    seeds: int = 1,
    epochs: int | None = None,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """§3.3's CIFAR-10 table: both nets of footnote 3 trained with preset cuda-convnet (run
    folders OUT/<model>-seed<S>, those of benchmarks/cuda_convnet_table.sh), then tested as
    cuda-convnet's --multiview-test does: softmax averaged over the 4 corner and the centre
    24x24 crops and their mirrors (the 10 views of §4.1), on the final weights (last.pt). The
    curves of seed 0 are drawn into OUT/table.png."""
    out = Path(out)
    table, series = {}, {}
    for model, paper in TABLE_NETS.items():
        rows = []
        for seed in range(seeds):
            run = out / f"{model}-seed{seed}"
            cfg = {**PRESETS["cuda-convnet"], "model": model, "data": data, "seed": seed, "workers": workers}
            cfg["epochs"] = epochs or cfg["epochs"]
            metrics = run_once(run, progress, **cfg)
            views = run / "multiview.json"  # measured once per finished run
            if not views.exists():
                r = evaluate(
                    str(run / "last.pt"), data, "10", workers=workers, batch_size=128, progress=progress
                )
                write_json(views, {"top1_err": r["top1_err"], "top5_err": r["top5_err"]})
            if seed == 0:  # test curves first: the first two colours are the ones to compare
                done = [int(m["epoch"]) for m in metrics]
                for split, name in (("val", "test"), ("train", "train")):
                    series[(split, model)] = (
                        f"{model} {name}",
                        done,
                        [float(m[f"{split}_top1_err"]) for m in metrics],
                    )
            rows.append(
                dict(
                    seed=seed,
                    epochs=len(metrics),
                    center_err=float(metrics[-1]["val_top1_err"]),
                    multiview_err=json.loads(views.read_text())["top1_err"],
                    hours=sum(float(m["seconds"]) for m in metrics) / 3600,
                )
            )
        errs = [r["multiview_err"] for r in rows]
        table[model] = dict(
            paper=paper,
            runs=rows,
            mean=statistics.mean(errs),
            std=statistics.stdev(errs) if len(errs) > 1 else 0.0,
        )
    write_json(out / "table.json", table)
    lines = {name: (xs, ys) for _, (name, xs, ys) in sorted(series.items(), key=lambda kv: kv[0][0] != "val")}
    last = max((xs[-1] for xs, _ in lines.values()), default=0)
    drops = [m + 0.5 for m in PRESETS["cuda-convnet"]["milestones"] if m < last]  # the ÷10 steps
    line_chart(lines, out / "table.png", vlines=drops, size=(720, 400))
    return table
