"""`alexnet evaluate`: top-1/top-5 error of one network or an ensemble, centre or 10-crop, with
per-class accuracy and a confusion matrix written as CSV. Weights in any format we read; each
network's card supplies its preprocessing."""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data import Decoding, make_loader, open_dataset, resolve_workers
from ..devices import check_device
from ..errors import BadInput
from ..interop.pretrained import load_pretrained
from ..jsonio import write_json
from .metrics import evaluate_loader


def network_classes(card) -> list[str] | None:
    """The class names a network's outputs stand for; None when its card has none (Caffe and
    torchvision weights converted without a labels file)."""
    return list(card.classes) if card.classes and len(card.classes) == card.num_classes else None


def check_labels(src, card, weights: str, data: str) -> None:
    """Every label must name one of the network's outputs. A card without class names can only
    be matched by position: allowed, with a warning, when the counts agree."""
    unlabelled = np.flatnonzero(src.labels < 0)
    if len(unlabelled):
        raise BadInput(
            f"--data {data}: {len(unlabelled)} image(s) have no class, e.g. "
            f"{src.names[unlabelled[0]]}; evaluation needs <class>/ folders or --labels"
        )
    if network_classes(card) is not None:
        return  # open_dataset matched every class by name
    n = card.num_classes
    if src.numbered:
        bad = np.flatnonzero(src.labels >= n)
        if len(bad):
            raise BadInput(
                f"--data {data}: {src.names[bad[0]]} has label {src.labels[bad[0]]}, "
                f"but {weights} has {n} outputs (0..{n - 1})"
            )
    elif len(src.classes) == n:
        warnings.warn(
            f"{weights}: the network names no classes; taking the {n} sorted classes of "
            f"{data} ({src.classes[0]} .. {src.classes[-1]}) as its outputs 0..{n - 1}",
            stacklevel=2,
        )
    else:
        raise BadInput(
            f"{weights}: the network names no classes, so the {len(src.classes)} classes of "
            f"{data} cannot be matched to its {n} outputs; give it class names "
            f"(alexnet convert --class-names) or give class numbers (--labels <file> <number>)"
        )


DENSE_MAX = 1000  # classes: ImageNet's 1000 x 1000 table is 2 MB of CSV; 20,000 classes would be 800 MB


def write_confusion(path: Path, tally, classes: list[str]) -> None:
    """The confusion matrix as a table (one row per true class, one column per predicted class)
    for up to DENSE_MAX classes; beyond, its non-empty cells (true, predicted, images), which
    are no more than the images evaluated."""
    true, pred, n = tally.confusion()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if len(classes) > DENSE_MAX:
            w.writerow(["true", "predicted", "images"])
            w.writerows(
                [classes[t], classes[p], c] for t, p, c in zip(true.tolist(), pred.tolist(), n.tolist())
            )
            return
        dense = torch.zeros(len(classes), len(classes), dtype=torch.long)
        dense[true, pred] = n
        w.writerow(["true \\\\ predicted", *classes])
        for name, row in zip(classes, dense.tolist()):
            w.writerow([name, *row])


def evaluate(
    weights: str | os.PathLike,
    data: str | os.PathLike,
    crops: str = "center",
    ensemble: list[str | os.PathLike] | None = None,
    split: str = "val",
    labels: str | os.PathLike | None = None,
    batch_size: int = 64,
    workers: int | str = "auto",
    device: str = "cpu",
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    if crops not in ("center", "10"):
        raise ValueError(f"--crops must be 'center' or '10', got {crops!r}")
    check_device(device)
    paths = [weights, *(ensemble or [])]
    loaded = [load_pretrained(p) for p in paths]  # any weight format, with its card
    card = loaded[0][1]
    for p, (_, c) in zip(paths[1:], loaded[1:]):
        if (
            c.num_classes != card.num_classes
            or c.input_size != card.input_size
            or (c.classes and card.classes and list(c.classes) != list(card.classes))
        ):
            raise BadInput(f"{p}: its classes or input size differ from {weights}'s; cannot ensemble")
    dev = torch.device(device)
    models = [m.to(dev) for m, _ in loaded]
    pipeline = card.pipeline().to(dev)
    ds = open_dataset(
        data,
        split,
        Decoding(card.resize, card.resize),
        labels_file=labels,
        classes=network_classes(card),
        classes_from=f"the network {weights}",
    )
    check_labels(ds.source, card, weights, data)
    card.check_channels(ds.source.channels, data, weights)
    loader = make_loader(
        ds, batch_size, shuffle=False, workers=resolve_workers(workers, dev), pin_memory=dev.type == "cuda"
    )
    tally, skipped = evaluate_loader(
        models, loader, pipeline, card.num_classes, dev, crops, progress=progress
    )
    result = {
        **tally.result(),
        "skipped": skipped,
        "crops": crops,
        "models": list(map(str, paths)),
        "data": str(data),
    }
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        classes = [card.class_name(i) for i in range(card.num_classes)]
        images, acc = tally.per_class()
        with open(out / "per_class.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "images", "accuracy"])
            for i, name in enumerate(classes):
                w.writerow([name, int(images[i]), f"{acc[i].item():.6f}"])
        write_confusion(out / "confusion.csv", tally, classes)
        write_json(out / "evaluation.json", result)
        result["out_dir"] = str(out)
    return result
