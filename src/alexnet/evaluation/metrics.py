"""Top-1/top-5 error, multi-crop and ensemble averaging of softmax outputs (§4.1, Table 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm


class Tally:
    """Running counts, kept on the batches' device so that adding a batch never waits for it
    (no host synchronisation per step); read them once, at the end or per logging interval.
    `sums` (images, loss sum, top-1 hits, top-5 hits) merges across DDP ranks by summing."""

    def __init__(self, num_classes: int, device="cpu", confusion: bool = True):
        self.num_classes = num_classes
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)
        # the confusion matrix as one cell number (true * C + predicted) per image, counted at the
        # end: its size follows the images, not C x C (80 GB for a 100,000-class card)
        self.cells: list[torch.Tensor] | None = [] if confusion else None

    def add(self, probs_or_logits: torch.Tensor, labels: torch.Tensor, loss_sum) -> None:
        """loss_sum: a tensor on the same device (or a number)."""
        k = min(5, probs_or_logits.shape[1])
        top = probs_or_logits.topk(k, dim=1).indices
        labels = labels.to(top.device)
        hits = top == labels[:, None]
        self.sums[0] += len(labels)
        self.sums[1] += loss_sum
        self.sums[2:] += torch.stack([hits[:, 0].sum(), hits.any(1).sum()])
        if self.cells is not None:  # no boolean indexing here: it would wait for the device
            valid = (labels >= 0) & (labels < self.num_classes)
            self.cells.append(torch.where(valid, labels * self.num_classes + top[:, 0], -1))

    def load(self, sums: torch.Tensor) -> Tally:
        self.sums.copy_(sums)
        return self

    def as_tensor(self) -> torch.Tensor:
        return self.sums

    def result(self) -> dict:
        n, loss, top1, top5 = self.sums.tolist()
        d = max(n, 1)
        return {"images": int(n), "loss": loss / d, "top1_err": 1 - top1 / d, "top5_err": 1 - top5 / d}

    @property
    def n(self) -> int:
        return int(self.sums[0])

    def confusion(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(true class, predicted class, images) of every non-empty cell of the confusion matrix,
        in row-major order: a sparse matrix, as many cells as there were images at most."""
        cells = torch.cat(self.cells).cpu() if self.cells else torch.zeros(0, dtype=torch.long)
        cells, counts = torch.unique(cells[cells >= 0], return_counts=True)
        return cells // self.num_classes, cells % self.num_classes, counts

    def per_class(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, accuracy) of each class: C numbers each."""
        true, pred, n = self.confusion()
        images = torch.zeros(self.num_classes, dtype=torch.long).index_add_(0, true, n)
        right = torch.zeros(self.num_classes, dtype=torch.long).index_add_(0, true, n * (true == pred))
        return images, right.double() / images.clamp(min=1)


@torch.no_grad()
def predict_probs(
    models: list[nn.Module], images: torch.Tensor, pipeline, crops: str, channels_last: bool = False, amp=None
) -> torch.Tensor:
    """Softmax averaged over crops (§4.1: "averaging the predictions made by the network's
    softmax layer on the ten patches") and over the models of an ensemble (Table 2)."""
    x = pipeline.eval(images, crops)
    n = len(x)
    if crops == "10":
        x = x.flatten(0, 1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    total = None
    for m in models:
        with amp if amp is not None else torch.autocast("cpu", enabled=False):
            logits = m(x).float()
        p = F.softmax(logits, 1)
        p = p.view(n, -1, p.shape[1]).mean(1) if crops == "10" else p
        total = p if total is None else total + p
    return total / len(models)


def evaluate_loader(
    models: list[nn.Module],
    loader,
    pipeline,
    num_classes: int,
    device,
    crops: str = "center",
    limit: int | None = None,
    channels_last: bool = False,
    amp=None,
    progress: bool = True,
    desc: str = "eval",
) -> tuple[Tally, int]:
    """(tally, skipped files). The loss is the cross-entropy of the averaged probabilities."""
    for m in models:
        m.eval()
    tally, skipped = Tally(num_classes, device), 0
    for i, batch in enumerate(tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress)):
        if limit is not None and i >= limit:
            break
        skipped += len(batch.skipped)
        if not len(batch.images):
            continue
        images = batch.images.to(device, non_blocking=True)
        labels = batch.labels.to(device, non_blocking=True)
        probs = predict_probs(models, images, pipeline, crops, channels_last, amp)
        loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum")
        tally.add(probs, labels, loss)
    return tally, skipped
