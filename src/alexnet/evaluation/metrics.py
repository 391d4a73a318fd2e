"""Top-1/top-5 error, multi-crop and ensemble averaging of softmax outputs (§4.1, Table 2)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm


@dataclass
class Tally:
    """Running counts; `merge`-able across DDP ranks by summing the tensors."""
    num_classes: int
    n: int = 0
    loss_sum: float = 0.0
    top1: int = 0
    top5: int = 0
    confusion: torch.Tensor = field(default=None)  # (true, predicted) counts

    def __post_init__(self):
        if self.confusion is None:
            self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)

    def add(self, probs_or_logits: torch.Tensor, labels: torch.Tensor, loss_sum: float) -> None:
        k = min(5, probs_or_logits.shape[1])
        top = probs_or_logits.topk(k, dim=1).indices.cpu()
        labels = labels.cpu()
        self.top1 += int((top[:, 0] == labels).sum())
        self.top5 += int((top == labels[:, None]).any(1).sum())
        self.n += len(labels)
        self.loss_sum += loss_sum
        valid = (labels >= 0) & (labels < self.num_classes)
        idx = labels[valid] * self.num_classes + top[valid, 0]
        self.confusion += torch.bincount(idx, minlength=self.num_classes ** 2).view_as(self.confusion)

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.n, self.loss_sum, self.top1, self.top5], dtype=torch.float64)

    def result(self) -> dict:
        n = max(self.n, 1)
        return {"images": self.n, "loss": self.loss_sum / n, "top1_err": 1 - self.top1 / n,
                "top5_err": 1 - self.top5 / n}

    def per_class_accuracy(self) -> torch.Tensor:
        totals = self.confusion.sum(1)
        return self.confusion.diagonal().double() / totals.clamp(min=1)


@torch.no_grad()
def predict_probs(models: list[nn.Module], images: torch.Tensor, pipeline, crops: str,
                  channels_last: bool = False, amp=None) -> torch.Tensor:
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


def evaluate_loader(models: list[nn.Module], loader, pipeline, num_classes: int, device,
                    crops: str = "center", limit: int | None = None, channels_last: bool = False,
                    amp=None, progress: bool = True, desc: str = "eval") -> tuple[Tally, int]:
    """(tally, skipped files). The loss is the cross-entropy of the averaged probabilities."""
    for m in models:
        m.eval()
    tally, skipped = Tally(num_classes), 0
    for i, batch in enumerate(tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress)):
        if limit is not None and i >= limit:
            break
        skipped += len(batch.skipped)
        if not len(batch.images):
            continue
        images = batch.images.to(device, non_blocking=True)
        labels = batch.labels.to(device)
        probs = predict_probs(models, images, pipeline, crops, channels_last, amp)
        loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum").item()
        tally.add(probs, labels, loss)
    return tally, skipped
