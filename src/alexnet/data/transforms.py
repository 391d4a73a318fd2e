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
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)  # rows are R, G, B; eigenvectors are the columns

TEN_CROP_ORDER = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")


@dataclass
class CropBox:
    """Where each image of a batch is cropped: top-left corners, side, and mirroring. Applied
    to the batch and, at the same places, to a per-pixel mean image."""

    top: torch.Tensor  # (N,) long
    left: torch.Tensor  # (N,) long
    size: int
    flip: torch.Tensor | None = None  # (N,) bool

    def apply(self, src: torch.Tensor, gather: bool | None = None) -> torch.Tensor:
        """src (N, C, H, W), or one (C, H, W) shared by all -> (N, C, size, size), channels_last
        if src is (the loader's batches are: data/dataset.stack_images)."""
        n, s = len(self.top), self.size
        nhwc = src.dim() == 4 and _channels_last(src)
        if gather if gather is not None else src.device.type != "cpu":  # one kernel, not N copies
            ar = torch.arange(s, device=src.device)
            rows = (self.top[:, None] + ar)[:, :, None]
            cols = (
                self.left[:, None]
                + (ar if self.flip is None else torch.where(self.flip[:, None], s - 1 - ar, ar))
            )[:, None, :]
            if nhwc:  # whole pixels (C contiguous bytes) at a time, into (N, s, s, C): channels_last
                at = torch.arange(n, device=src.device)[:, None, None]
                return src.permute(0, 2, 3, 1)[at, rows, cols].permute(0, 3, 1, 2)
            ch = torch.arange(src.shape[-3], device=src.device)[None, :, None, None]
            rows, cols = rows[:, None], cols[:, None]
            if src.dim() == 3:
                return src[ch, rows, cols]
            return src[torch.arange(n, device=src.device)[:, None, None, None], ch, rows, cols]
        out = torch.empty(
            (n, src.shape[-3], s, s),
            dtype=src.dtype,
            memory_format=torch.channels_last if nhwc else torch.contiguous_format,
        )
        tops, lefts = self.top.tolist(), self.left.tolist()
        flips = self.flip.tolist() if self.flip is not None else [False] * n
        for i in range(n):  # on CPU, N slice copies beat a fancy-index gather several times over
            img = src if src.dim() == 3 else src[i]
            patch = img[:, tops[i] : tops[i] + s, lefts[i] : lefts[i] + s]
            out[i] = patch.flip(-1) if flips[i] else patch
        return out


def _channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def random_crop_flip(
    batch: torch.Tensor, size: int, generator: torch.Generator | None = None, flip: bool = True
) -> tuple[torch.Tensor, CropBox]:
    """§4.1: a random size x size patch and, with p=0.5, its horizontal reflection."""
    n, _, h, w = batch.shape
    if h < size or w < size:
        raise ValueError(f"crop {size} is larger than the stored {h}x{w} images")
    dev = batch.device
    top = torch.randint(0, h - size + 1, (n,), generator=generator, device=dev)
    left = torch.randint(0, w - size + 1, (n,), generator=generator, device=dev)
    mirror = (torch.rand(n, generator=generator, device=dev) < 0.5) if flip else None
    box = CropBox(top, left, size, mirror)
    return box.apply(batch), box


def fixed_crop(batch: torch.Tensor, size: int, where: str, mirror: bool = False):
    n, _, h, w = batch.shape
    if h < size or w < size:
        raise ValueError(f"crop {size} is larger than the stored {h}x{w} images")
    top, left = {
        "top-left": (0, 0),
        "top-right": (0, w - size),
        "bottom-left": (h - size, 0),
        "bottom-right": (h - size, w - size),
        "centre": ((h - size) // 2, (w - size) // 2),
    }[where]
    dev = batch.device
    box = CropBox(
        torch.full((n,), top, device=dev),
        torch.full((n,), left, device=dev),
        size,
        torch.full((n,), mirror, device=dev),
    )
    return box.apply(batch), box


def ten_crops(batch: torch.Tensor, size: int):
    """§4.1 test time: the four corner patches and the centre patch, then the same five
    mirrored, in TEN_CROP_ORDER (unmirrored first). Yields (crops, box) ten times."""
    for mirror in (False, True):
        for where in TEN_CROP_ORDER:
            yield fixed_crop(batch, size, where, mirror)


def pca_noise(
    n: int,
    eigval: torch.Tensor,
    eigvec: torch.Tensor,
    std: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """§4.1: to every pixel of an image add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T, a_i ~ N(0, std)
    drawn once per image (per presentation). Returns (n, 3) RGB offsets in eigval's units."""
    alpha = torch.randn(n, 3, generator=generator, device=eigval.device) * std
    return (alpha * eigval) @ eigvec.T


def random_resized_crop(
    batch: torch.Tensor,
    size: int,
    generator: torch.Generator | None = None,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    flip: bool = True,
) -> torch.Tensor:
    """The modern (Inception) crop: random area and aspect, resized bilinearly to size x size.
    Returns float pixels in the uint8 range."""
    n, _, h, w = batch.shape
    dev = batch.device
    area = torch.empty(n, device=dev).uniform_(*scale, generator=generator)
    logr = torch.empty(n, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    r = torch.exp(logr)
    cw = torch.sqrt(area * r).clamp(max=1.0)  # crop width as a fraction of w (square images)
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

    def to(self, device) -> Normalizer:
        std = None if self.std is None else self.std.to(device)
        return Normalizer(self.mean.to(device), std, self.scale, self.bgr)

    def __call__(
        self,
        crops: torch.Tensor,
        box: CropBox | None = None,
        noise: torch.Tensor | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> torch.Tensor:
        """Float batches in `memory_format`, laid out so by the conversion to float itself (the
        one pass that writes them), not by a copy after."""
        c = crops.shape[1]
        gain = torch.full((c,), self.scale, device=crops.device)  # per channel
        if self.std is not None:
            gain = gain / self.std
        x = crops.to(torch.float32, memory_format=memory_format).mul_((gain / 255.0)[None, :, None, None])
        shift = torch.zeros(len(crops), c, device=crops.device)  # per image and channel
        if noise is not None:
            shift += noise * gain
        if self.mean.dim() == 3 and box is not None:
            x.sub_(box.apply(self.mean * gain[:, None, None]))  # the mean's patch at the crop's place
        else:  # channel means (a mean image without a pixel grid, e.g. resized crops: its colour)
            mean = self.mean.mean((1, 2)) if self.mean.dim() == 3 else self.mean
            shift -= mean * gain
        x.add_(shift[:, :, None, None])
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
    channels_last: bool = False  # the batches' layout: the model's (`alexnet train` runs channels_last)

    def __post_init__(self):
        if self.eigval is None:
            self.eigval = torch.tensor(IMAGENET_EIGVAL)
            self.eigvec = torch.tensor(IMAGENET_EIGVEC)

    def to(self, device) -> Pipeline:
        return Pipeline(
            self.normalize.to(device),
            self.crop,
            self.flip,
            self.pca_std,
            self.eigval.to(device),
            self.eigvec.to(device),
            self.random_resized,
            self.channels_last,
        )

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def train(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.random_resized:
            crops, box = random_resized_crop(batch, self.crop, generator, flip=self.flip), None
        else:
            crops, box = random_crop_flip(batch, self.crop, generator, self.flip)
        noise = None
        if self.pca_std > 0 and batch.shape[1] == 3:
            noise = pca_noise(len(batch), self.eigval, self.eigvec, self.pca_std, generator)
        return self.normalize(crops, box, noise, self.memory_format)

    def eval(self, batch: torch.Tensor, crops: str = "center") -> torch.Tensor:
        """(N, C, s, s) for the centre crop; (N, 10, C, s, s) for 10-crop (TEN_CROP_ORDER)."""
        if crops == "center":
            return self.normalize(*fixed_crop(batch, self.crop, "centre"), memory_format=self.memory_format)
        if crops == "10":
            return torch.stack(
                [self.normalize(*c, memory_format=self.memory_format) for c in ten_crops(batch, self.crop)], 1
            )
        raise ValueError(f"crops must be 'center' or '10', got {crops!r}")
