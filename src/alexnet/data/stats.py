"""Training-set statistics in one streaming pass: the mean image (§2: "subtracting the mean
activity over the training set from each pixel"), per-channel mean/std, and the RGB covariance
whose eigen-pairs drive the PCA colour noise of §4.1. All in [0, 1] pixel units."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..fileio import load_pt, save_pt
from .dataset import ImageDataset, collate, make_loader

# Working set of one step of the second-moment sum. The whole batch in float64 is 400 MB at
# 256 x 256 (batch 256); three such transients a batch, freed and reallocated around the small
# long-lived sums, fragmented the heap without bound under the tuned allocator (runtime.py).
CHUNK_BYTES = 16 << 20


class RunningStats:
    """Sums of the integer pixel values (0..255) in float64, taken over chunks of a batch: every
    partial sum of integers and of their products (<= 255^2 each) stays below 2^53, so it is
    exact, and a million images lose nothing to rounding; no batch is ever widened whole."""

    def __init__(self):
        self.n_images = 0
        self.n_pixels = 0
        self.shape: tuple | None = None  # (C, H, W)
        self.sum_image: torch.Tensor | None = None  # (C, H * W) float64
        self.sum_outer = torch.zeros(3, 3, dtype=torch.float64)

    def update(self, batch: torch.Tensor) -> None:
        """Add a (N, C, H, W) uint8 batch."""
        n, c = batch.shape[:2]
        if self.sum_image is None:
            self.shape = tuple(batch.shape[1:])
            self.sum_image = torch.zeros(c, batch[0, 0].numel(), dtype=torch.float64)
            self.sum_outer = torch.zeros(c, c, dtype=torch.float64)
        step = max(1, CHUNK_BYTES // (batch[0].numel() * 8))
        for i in range(0, n, step):
            x = batch[i : i + step].reshape(-1, c, self.sum_image.shape[1]).to(torch.float64)  # (k, C, HW)
            self.sum_image += x.sum(0)
            self.sum_outer += torch.bmm(x, x.transpose(1, 2)).sum(0)
        self.n_images += n
        self.n_pixels += n * self.sum_image.shape[1]

    def all_reduce(self, reduce) -> None:
        """Sum the accumulators of processes that each read a shard; reduce(t) sums t in place."""
        if self.sum_image is None:
            raise ValueError("no images were read in this process's shard: cannot compute statistics")
        counts = torch.tensor([self.n_images, self.n_pixels], dtype=torch.float64)
        parts = [self.sum_image, self.sum_outer, counts]
        flat = torch.cat([p.flatten() for p in parts])
        reduce(flat)
        a, b = self.sum_image.numel(), self.sum_outer.numel()
        self.sum_image = flat[:a].view_as(self.sum_image)
        self.sum_outer = flat[a : a + b].view_as(self.sum_outer)
        self.n_images, self.n_pixels = int(flat[a + b]), int(flat[a + b + 1])

    def result(self) -> dict[str, torch.Tensor | int]:
        if not self.n_images:
            raise ValueError("no images were read: cannot compute statistics")
        mean_image = (self.sum_image / (255.0 * self.n_images)).reshape(self.shape)
        mean = self.sum_image.sum(1) / (255.0 * self.n_pixels)
        cov = self.sum_outer / (255.0**2 * self.n_pixels) - torch.outer(mean, mean)
        eigval, eigvec = torch.linalg.eigh(cov)
        eigval, eigvec = eigval.flip(0), eigvec.flip(1)  # largest first; vectors are columns
        return {
            "mean_image": mean_image.float(),
            "mean": mean.float(),
            "std": cov.diagonal().clamp(min=0).sqrt().float(),
            "cov": cov.float(),
            "eigval": eigval.float(),
            "eigvec": eigvec.float(),
            "n_images": self.n_images,
        }


def compute_stats(
    dataset: ImageDataset,
    batch_size: int = 256,
    workers: int = 2,
    progress: bool = True,
    *,
    rank: int = 0,
    world: int = 1,
    reduce=None,
) -> dict:
    """With world > 1, process `rank` reads every world-th image and reduce(t) (an all-reduce
    sum) combines the float64 sums: the processes of a DDP run share the pass."""
    acc, skipped = RunningStats(), 0
    if world > 1:
        loader = DataLoader(
            dataset,
            batch_size,
            sampler=range(rank, len(dataset), world),
            num_workers=workers,
            collate_fn=collate,
        )
    else:
        loader = make_loader(dataset, batch_size, shuffle=False, workers=workers)
    for batch in tqdm(loader, desc="stats", unit="batch", disable=not progress):
        skipped += len(batch.skipped)
        if len(batch.images):
            acc.update(batch.images)
    if world > 1:
        acc.all_reduce(reduce)
        count = torch.tensor([float(skipped)], dtype=torch.float64)
        reduce(count)
        skipped = int(count[0])
    out = acc.result()
    out["skipped"] = skipped
    return out


def save_stats(stats: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_pt(stats, path)  # atomic, with a SHA-256 verified on load


def load_stats(path: str | Path) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such statistics file (make one with `alexnet stats`)")
    return load_pt(path, "statistics file from `alexnet stats`")
