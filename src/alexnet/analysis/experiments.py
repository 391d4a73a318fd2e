"""The paper's design claims, re-measured at small scale. Every configuration is a run folder of
`alexnet train` under OUT/, so an interrupted experiment picks up where it stopped: finished runs
are read back, unfinished ones resumed from their last.pt."""
from __future__ import annotations

import csv
import statistics
from pathlib import Path

from ..data import Decoding, compute_stats, open_dataset, save_stats
from ..jsonio import write_json
from ..training import Trainer, build_config, resume
from .figures import error_curves


def shared_stats(data: str, out: Path, workers: int, progress: bool) -> str:
    """One statistics pass for all configurations of an experiment (they share the data)."""
    path = out / "stats.pt"
    if not path.exists():
        ds = open_dataset(data, "train", Decoding(None, None))
        save_stats(compute_stats(ds, workers=workers, progress=progress), path)
    return str(path)


def run_once(run_dir: Path, progress: bool = True, **cfg) -> list[dict]:
    """Train (or finish, or just read) one configuration; returns its metrics rows."""
    if not (run_dir / "summary.json").exists():
        if (run_dir / "last.pt").exists():
            resume(str(run_dir), progress=progress)
        else:
            # no last.pt: whatever a killed start left there holds nothing worth keeping
            Trainer(build_config(None, None, run_dir=str(run_dir), **cfg), progress=progress,
                    overwrite=True).fit()
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


def _fig1_config(data: str, activation: str, lr: float, epochs: int, target: float, images: int | None,
                 batch_size: int, workers: int) -> dict:
    # Fig. 1: "no regularization of any kind": no weight decay, no dropout, no augmentation, no LRN
    return dict(model="cifar_convnet", model_kw={"activation": activation, "lrn": False}, data=data,
                resize=None, crop=32, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9,
                weight_decay=0.0, update_rule="torch", schedule="constant", flip=False, pca_std=0.0,
                mean="image", pixel_scale=1.0, workers=workers, target_train_error=target,
                limit_batches=None if images is None else -(-images // batch_size))


def relu_vs_tanh(data: str, out: str | Path, target: float = 0.25, lrs=(0.01, 0.03, 0.1),
                 epochs: int = 30, images: int | None = None, batch_size: int = 128, workers: int = 2,
                 progress: bool = True) -> dict:
    """Epochs (and seconds) to `target` training error for each activation and learning rate;
    each activation judged at its own fastest learning rate, as in the paper."""
    out = Path(out)
    stats = shared_stats(data, out, workers, progress)
    results = {}
    for act in ("relu", "tanh"):
        for lr in lrs:
            rows = run_once(out / f"{act}-lr{lr:g}", progress, stats=stats,
                            **_fig1_config(data, act, lr, epochs, target, images, batch_size, workers))
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
    summary = {"target_train_error": target, "images_per_epoch": images, "best": best,
               "all": {f"{a}-lr{lr:g}": r for (a, lr), r in results.items()}}
    if best["relu"]["epochs"] and best["tanh"]["epochs"]:
        summary["epoch_ratio_tanh_over_relu"] = best["tanh"]["epochs"] / best["relu"]["epochs"]
        summary["time_ratio_tanh_over_relu"] = best["tanh"]["seconds"] / best["relu"]["seconds"]
    write_json(out / "summary.json", summary)
    error_curves({f"ReLU (lr {best['relu']['lr']:g})": best["relu"]["curve"],
                  f"tanh (lr {best['tanh']['lr']:g})": best["tanh"]["curve"]}, target, out / "fig1.png")
    return summary


ABLATIONS = {  # name: (model_kw, data overrides), relative to the full model
    "full": ({}, {}),
    "no LRN (§3.3)": ({"lrn": False}, {}),
    "non-overlapping pool 2/2 (§3.4)": ({"pool_size": 2}, {}),
    "no dropout (§4.2)": ({"dropout": 0.0}, {}),
    "no PCA colour noise (§4.1)": ({}, {"pca_std": 0.0}),
}
PAPER = {"no LRN (§3.3)": "+1.4 % top-1 (ImageNet); 11 % -> 13 % (CIFAR-10)",
         "non-overlapping pool 2/2 (§3.4)": "+0.4 % top-1 / +0.3 % top-5",
         "no dropout (§4.2)": "substantial overfitting; half the iterations to converge",
         "no PCA colour noise (§4.1)": "+1 % top-1"}


def ablations(data: str, out: str | Path, seeds: int = 3, epochs: int = 8, images: int | None = None,
              batch_size: int = 128, workers: int = 2, progress: bool = True) -> dict:
    """Test error of the CIFAR-10 net with each of the paper's ingredients removed in turn."""
    out = Path(out)
    stats = shared_stats(data, out, workers, progress)
    table = {}
    for name, (model_kw, over) in ABLATIONS.items():
        errs = []
        for seed in range(seeds):
            kw = {"lrn": True, "pool_size": 3, "dropout": 0.5, **model_kw}
            cfg = dict(model="cifar_convnet", model_kw=kw, data=data, resize=None, crop=32, epochs=epochs,
                       batch_size=batch_size, lr=0.05, schedule="step", step_size=max(1, epochs * 2 // 3),
                       update_rule="torch", weight_decay=5e-4, mean="image", pixel_scale=1.0, flip=True,
                       pca_std=0.1, seed=seed, workers=workers, stats=stats,
                       limit_batches=None if images is None else -(-images // batch_size))
            cfg.update(over)
            slug = "".join(ch if ch.isalnum() else "-" for ch in name.split(" (")[0]).strip("-")
            rows = run_once(out / f"{slug}-seed{seed}", progress, **cfg)
            errs.append(float(rows[-1]["val_top1_err"]))
        table[name] = dict(mean=statistics.mean(errs), std=statistics.stdev(errs) if len(errs) > 1 else 0.0,
                           errors=errs, paper=PAPER.get(name, ""))
    write_json(out / "summary.json", table)
    return table
