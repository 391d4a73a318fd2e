"""Training-set statistics in one streaming pass: the mean image (§2: "subtracting the mean
activity over the training set from each pixel"), per-channel mean/std, and the RGB covariance
whose eigen-pairs drive the PCA colour noise of §4.1. All in [0, 1] pixel units."""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from .dataset import ImageDataset, make_loader


class RunningStats:
    """Accumulates in float64 so that a million images lose nothing to rounding."""

    def __init__(self):
        self.n_images = 0
        self.n_pixels = 0
        self.sum_image: torch.Tensor | None = None
        self.sum_outer = torch.zeros(3, 3, dtype=torch.float64)

    def update(self, batch: torch.Tensor) -> None:
        x = batch.to(torch.float64) / 255.0  # (N, C, H, W)
        s = x.sum(0)
        self.sum_image = s if self.sum_image is None else self.sum_image + s
        flat = x.permute(1, 0, 2, 3).reshape(x.shape[1], -1)  # (C, pixels)
        if self.sum_outer.shape[0] != flat.shape[0]:
            self.sum_outer = torch.zeros(flat.shape[0], flat.shape[0], dtype=torch.float64)
        self.sum_outer += flat @ flat.T
        self.n_images += x.shape[0]
        self.n_pixels += flat.shape[1]

    def result(self) -> dict[str, torch.Tensor | int]:
        if not self.n_images:
            raise ValueError("no images were read: cannot compute statistics")
        mean_image = self.sum_image / self.n_images
        mean = self.sum_image.sum((1, 2)) / self.n_pixels
        cov = self.sum_outer / self.n_pixels - torch.outer(mean, mean)
        eigval, eigvec = torch.linalg.eigh(cov)
        eigval, eigvec = eigval.flip(0), eigvec.flip(1)  # largest first; vectors are columns
        return {"mean_image": mean_image.float(), "mean": mean.float(),
                "std": cov.diagonal().clamp(min=0).sqrt().float(), "cov": cov.float(),
                "eigval": eigval.float(), "eigvec": eigvec.float(), "n_images": self.n_images}


def compute_stats(dataset: ImageDataset, batch_size: int = 256, workers: int = 2,
                  progress: bool = True) -> dict:
    acc, skipped = RunningStats(), 0
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers)
    for batch in tqdm(loader, desc="stats", unit="batch", disable=not progress):
        skipped += len(batch.skipped)
        if len(batch.images):
            acc.update(batch.images)
    out = acc.result()
    out["skipped"] = skipped
    return out


def save_stats(stats: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(stats, tmp)
    tmp.replace(path)


def load_stats(path: str | Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such statistics file (make one with `alexnet stats`)") from None
    except Exception as e:
        raise ValueError(f"{path}: not a statistics file from `alexnet stats` ({e})") from None
