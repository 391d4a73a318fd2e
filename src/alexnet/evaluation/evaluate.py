"""`alexnet evaluate`: top-1/top-5 error of one network or an ensemble, centre or 10-crop, with
per-class accuracy and a confusion matrix written as CSV. Weights in any format we read; each
network's card supplies its preprocessing."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from ..data import Decoding, make_loader, open_dataset
from ..interop.pretrained import load_pretrained
from .metrics import evaluate_loader


def evaluate(weights: str, data: str, crops: str = "center", ensemble: list[str] | None = None,
             split: str = "val", labels: str | None = None, batch_size: int = 64, workers: int = 2,
             device: str = "cpu", out_dir: str | None = None, progress: bool = True) -> dict:
    if crops not in ("center", "10"):
        raise ValueError(f"--crops must be 'center' or '10', got {crops!r}")
    paths = [weights, *(ensemble or [])]
    loaded = [load_pretrained(p) for p in paths]  # any weight format, with its card
    card = loaded[0][1]
    for p, (_, c) in zip(paths[1:], loaded[1:]):
        if c.num_classes != card.num_classes or c.input_size != card.input_size:
            raise ValueError(f"{p}: its classes or input size differ from {weights}'s; cannot ensemble")
    dev = torch.device(device)
    models = [m.to(dev) for m, _ in loaded]
    pipeline = card.pipeline().to(dev)
    ds = open_dataset(data, split, Decoding(card.resize, card.resize), labels_file=labels)
    loader = make_loader(ds, batch_size, shuffle=False, workers=workers)
    tally, skipped = evaluate_loader(models, loader, pipeline, card.num_classes, dev, crops,
                                     progress=progress)
    result = {**tally.result(), "skipped": skipped, "crops": crops, "models": paths, "data": data}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        classes = [card.class_name(i) for i in range(card.num_classes)]
        acc = tally.per_class_accuracy()
        with open(out / "per_class.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "images", "accuracy"])
            for i, name in enumerate(classes):
                w.writerow([name, int(tally.confusion[i].sum()), f"{acc[i].item():.6f}"])
        with open(out / "confusion.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["true \\\\ predicted", *classes])
            for i, name in enumerate(classes):
                w.writerow([name, *tally.confusion[i].tolist()])
        (out / "evaluation.json").write_text(json.dumps(result, indent=2))
        result["out_dir"] = str(out)
    return result
