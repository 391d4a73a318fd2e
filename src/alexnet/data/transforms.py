"""Batched augmentation and normalisation on uint8 tensors (paper §4.1), on any device.

All functions take (N, C, S, S) uint8 batches and a torch.Generator on the batch's device, so the
same code runs in the training process on CPU or after the transfer to a GPU, and is
reproducible from the generator's state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ImageNet RGB eigen-pairs for [0, 1] pixels, the values most reimplementations use
# (from fb.resnet.torch); `alexnet stats` computes a dataset's own.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))  # rows are R, G, B; eigenvectors are the columns

TEN_CROP_ORDER = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")


def _grid(batch: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int,
          flip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    ar = torch.arange(size, device=batch.device)
    rows = top[:, None] + ar
    cols = left[:, None] + (ar if flip is None else torch.where(flip[:, None], size - 1 - ar, ar))
    return rows, cols


def gather(src: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """src (N, C, H, W) or a shared (C, H, W) -> (N, C, size, size) at the given rows/cols."""
    ch = torch.arange(src.shape[-3], device=src.device)[None, :, None, None]
    r, k = rows[:, None, :, None], cols[:, None, None, :]
    if src.dim() == 3:  # broadcasts to (N, C, size, size)
        return src[ch, r, k]
    return src[torch.arange(len(rows), device=src.device)[:, None, None, None], ch, r, k]


def random_crop_flip(batch: torch.Tensor, size: int, generator: torch.Generator | None = None,
                     flip: bool = True):
    """§4.1: a random size x size patch and, with p=0.5, its horizontal reflection.
    Returns (crops, rows, cols); rows/cols locate each crop for the mean image."""
    n, _, h, w = batch.shape
    if h < size or w < size:
        raise ValueError(f"crop {size} is larger than the stored {h}x{w} images")
    dev = batch.device
    top = torch.randint(0, h - size + 1, (n,), generator=generator, device=dev)
    left = torch.randint(0, w - size + 1, (n,), generator=generator, device=dev)
    mirror = (torch.rand(n, generator=generator, device=dev) < 0.5) if flip else None
    rows, cols = _grid(batch, top, left, size, mirror)
    return gather(batch, rows, cols), rows, cols


def fixed_crop(batch: torch.Tensor, size: int, where: str, mirror: bool = False):
    n, _, h, w = batch.shape
    if h < size or w < size:
        raise ValueError(f"crop {size} is larger than the stored {h}x{w} images")
    top, left = {"top-left": (0, 0), "top-right": (0, w - size), "bottom-left": (h - size, 0),
                 "bottom-right": (h - size, w - size),
                 "centre": ((h - size) // 2, (w - size) // 2)}[where]
    dev = batch.device
    t = torch.full((n,), top, device=dev)
    l = torch.full((n,), left, device=dev)
    rows, cols = _grid(batch, t, l, size, torch.full((n,), mirror, device=dev))
    return gather(batch, rows, cols), rows, cols


def ten_crops(batch: torch.Tensor, size: int):
    """§4.1 test time: the four corner patches and the centre patch, then the same five
    mirrored, in TEN_CROP_ORDER (unmirrored first). Yields (crops, rows, cols) ten times."""
    for mirror in (False, True):
        for where in TEN_CROP_ORDER:
            yield fixed_crop(batch, size, where, mirror)


def pca_noise(n: int, eigval: torch.Tensor, eigvec: torch.Tensor, std: float = 0.1,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """§4.1: to every pixel of an image add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T, a_i ~ N(0, std)
    drawn once per image (per presentation). Returns (n, 3) RGB offsets in eigval's units."""
    alpha = torch.randn(n, 3, generator=generator, device=eigval.device) * std
    return (alpha * eigval) @ eigvec.T


def random_resized_crop(batch: torch.Tensor, size: int, generator: torch.Generator | None = None,
                        scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """The modern (Inception) crop: random area and aspect, resized bilinearly to size x size.
    Returns float pixels in the uint8 range."""
    n, _, h, w = batch.shape
    dev = batch.device
    area = torch.empty(n, device=dev).uniform_(*scale, generator=generator)
    logr = torch.empty(n, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    r = torch.exp(logr)
    cw = torch.sqrt(area * r).clamp(max=1.0)   # crop width as a fraction of w (square images)
    ch = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(n, generator=generator, device=dev) * 2 - 1) * (1 - cw)
    cy = (torch.rand(n, generator=generator, device=dev) * 2 - 1) * (1 - ch)
    sx = cw
    if flip:
        sx = torch.where(torch.rand(n, generator=generator, device=dev) < 0.5, -cw, cw)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, ch, cy
    grid = F.affine_grid(theta, (n, batch.shape[1], size, size), align_corners=False)
    return F.grid_sample(batch.float(), grid, mode="bilinear", align_corners=False)


@dataclass
class Normalizer:
    """(pixels/255 + noise - mean) * scale / std, then the model's channel order.

    mean: (C,) per-channel or (C, S, S) per-pixel mean image, in [0, 1] units. The paper subtracts
    the mean image from raw 0-255 pixels (scale=255, std=1); torchvision uses scale=1 and a std."""
    mean: torch.Tensor
    std: torch.Tensor | None = None
    scale: float = 255.0
    bgr: bool = False

    def to(self, device) -> "Normalizer":
        std = None if self.std is None else self.std.to(device)
        return Normalizer(self.mean.to(device), std, self.scale, self.bgr)

    def __call__(self, crops: torch.Tensor, rows=None, cols=None, noise=None) -> torch.Tensor:
        x = crops.float() / 255.0
        if noise is not None:
            x = x + noise[:, :, None, None]
        if self.mean.dim() == 3 and rows is not None:
            x = x - gather(self.mean, rows, cols)  # the mean image's patch at the crop's location
        elif self.mean.dim() == 3:  # resized crops have no pixel grid: use the mean colour
            x = x - self.mean.mean((1, 2))[None, :, None, None]
        else:
            x = x - self.mean[None, :, None, None]
        x = x * self.scale
        if self.std is not None:
            x = x / self.std[None, :, None, None]
        return x.flip(1) if self.bgr else x


@dataclass
class Pipeline:
    """uint8 batches -> normalised float batches for training (§4.1) and testing."""
    normalize: Normalizer
    crop: int = 227
    flip: bool = True
    pca_std: float = 0.1
    eigval: torch.Tensor | None = None
    eigvec: torch.Tensor | None = None
    random_resized: bool = False

    def __post_init__(self):
        if self.eigval is None:
            self.eigval = torch.tensor(IMAGENET_EIGVAL)
            self.eigvec = torch.tensor(IMAGENET_EIGVEC)

    def to(self, device) -> "Pipeline":
        return Pipeline(self.normalize.to(device), self.crop, self.flip, self.pca_std,
                        self.eigval.to(device), self.eigvec.to(device), self.random_resized)

    def train(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.random_resized:
            crops, rows, cols = random_resized_crop(batch, self.crop, generator, flip=self.flip), None, None
        else:
            crops, rows, cols = random_crop_flip(batch, self.crop, generator, self.flip)
        noise = None
        if self.pca_std > 0 and batch.shape[1] == 3:
            noise = pca_noise(len(batch), self.eigval, self.eigvec, self.pca_std, generator)
        return self.normalize(crops, rows, cols, noise)

    def eval(self, batch: torch.Tensor, crops: str = "center") -> torch.Tensor:
        """(N, C, s, s) for the centre crop; (N, 10, C, s, s) for 10-crop (TEN_CROP_ORDER)."""
        if crops == "center":
            return self.normalize(*fixed_crop(batch, self.crop, "centre"))
        if crops == "10":
            return torch.stack([self.normalize(*c) for c in ten_crops(batch, self.crop)], 1)
        raise ValueError(f"crops must be 'center' or '10', got {crops!r}")
