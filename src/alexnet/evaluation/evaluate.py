"""`alexnet evaluate`: top-1/top-5 error of one network or an ensemble, centre or 10-crop, with
per-class accuracy and a confusion matrix written as CSV."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from ..data import Decoding, make_loader, open_dataset
from ..models import create_model
from ..training.checkpoint import load_checkpoint
from ..training.setup import pipeline_from_card
from .metrics import evaluate_loader


def load_trained(path: str):
    """(model in eval mode, card) from a checkpoint written by `alexnet train`."""
    ck = load_checkpoint(path)
    if "card" not in ck or "model" not in ck:
        raise ValueError(f"{path}: not a checkpoint written by `alexnet train`")
    c = ck["card"]
    kw = {k: v for k, v in c["model_kw"].items() if k not in ("seed", "init")}
    model = create_model(c["model"], num_classes=c["num_classes"], in_channels=c["in_channels"], **kw)
    model.load_state_dict(ck["model"])
    return model.eval(), c


def evaluate(weights: str, data: str, crops: str = "center", ensemble: list[str] | None = None,
             split: str = "val", labels: str | None = None, batch_size: int = 64, workers: int = 2,
             device: str = "cpu", out_dir: str | None = None, progress: bool = True) -> dict:
    if crops not in ("center", "10"):
        raise ValueError(f"--crops must be 'center' or '10', got {crops!r}")
    paths = [weights, *(ensemble or [])]
    loaded = [load_trained(p) for p in paths]
    card = loaded[0][1]
    for p, (_, c) in zip(paths[1:], loaded[1:]):
        if c["classes"] != card["classes"] or c["input_size"] != card["input_size"]:
            raise ValueError(f"{p}: its classes or input size differ from {weights}'s; cannot ensemble")
    dev = torch.device(device)
    models = [m.to(dev) for m, _ in loaded]
    pipeline = pipeline_from_card(card).to(dev)
    ds = open_dataset(data, split, Decoding(card["resize"], card["resize"]), labels_file=labels)
    loader = make_loader(ds, batch_size, shuffle=False, workers=workers)
    tally, skipped = evaluate_loader(models, loader, pipeline, card["num_classes"], dev, crops,
                                     progress=progress)
    result = {**tally.result(), "skipped": skipped, "crops": crops, "models": paths, "data": data}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        classes = card["classes"]
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
