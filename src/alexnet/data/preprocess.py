"""One image at a time, as torchvision and timm transforms work: `create_transform(**cfg)` returns a
callable that takes a PIL image, a uint8 (C, H, W) or (N, C, H, W) tensor, a numpy HxWxC array or
an image file's path, and returns the normalised float tensor.

It runs the very code `alexnet predict` and `alexnet train` run (decode.py, then the batched
Pipeline of transforms.py on a batch of one), so its numbers are theirs: eval is §2's shorter side
to the stored size and centre crop, then the input-size centre crop; train is §4.1's random crop,
mirror and PCA colour noise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .decode import decode, load_image, resize_crop
from .sources import read_regular
from .stats import load_stats
from .transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC, Normalizer, Pipeline


class ImageTransform:
    """image -> normalised tensor ((C, S, S) for one image, (N, C, S, S) for a batch)."""

    def __init__(
        self,
        pipeline: Pipeline,
        stored: int,
        channels: int,
        train: bool = False,
        generator: torch.Generator | None = None,
    ):
        self.pipeline, self.stored, self.channels, self.train = pipeline, stored, channels, train
        self.generator = generator  # None: torch's global RNG (seeded per DataLoader worker)

    def __call__(self, img) -> torch.Tensor:
        batch = self.uint8(img)
        if self.train:
            out = self.pipeline.train(batch, self.generator)
        else:
            out = self.pipeline.eval(batch)
        return out if _is_batch(img) else out[0]

    def uint8(self, img) -> torch.Tensor:
        """(N, C, stored, stored) uint8, decoded and resized as `alexnet predict` does it."""
        rgb = self.channels == 3
        if isinstance(img, (str, os.PathLike)):
            name = str(img)
            return decode(read_regular(img, name), name, self.stored, self.stored, rgb=rgb)[None]
        if isinstance(img, Image.Image):
            name = getattr(img, "filename", "") or "PIL image"
            image = load_image(img, name, self.stored)
            return resize_crop(image, name, self.stored, self.stored, rgb=rgb)[None]
        if isinstance(img, np.ndarray):
            return self.uint8(Image.fromarray(img))
        if isinstance(img, torch.Tensor):
            if img.dtype != torch.uint8 or img.dim() not in (3, 4):
                raise TypeError(
                    f"expected a uint8 image tensor (C, H, W) or (N, C, H, W) of 0-255 pixels, "
                    f"got {img.dtype} {tuple(img.shape)}"
                )
            batch = img if img.dim() == 4 else img[None]
            if batch.shape[1:] == (self.channels, self.stored, self.stored):
                return batch
            return torch.cat([self.uint8(_to_pil(t)) for t in batch.cpu()])
        raise TypeError(
            f"expected a PIL image, a uint8 tensor, a numpy array or a file path, got {type(img).__name__}"
        )

    def __repr__(self) -> str:
        p, n = self.pipeline, self.pipeline.normalize
        how = (
            f"random {p.crop}x{p.crop} crop{', mirror' if p.flip else ''}"
            f"{f', PCA noise {p.pca_std:g}' if p.pca_std else ''}"
            if self.train
            else f"centre crop {p.crop}"
        )
        return (
            f"ImageTransform(shorter side -> {self.stored}, centre {self.stored}x{self.stored}; {how}; "
            f"(pixels/255 - mean) x {n.scale:g}{' / std' if n.std is not None else ''}"
            f"{'; RGB -> BGR' if n.bgr else ''})"
        )


def _is_batch(img) -> bool:
    return isinstance(img, torch.Tensor) and img.dim() == 4


def _to_pil(t: torch.Tensor) -> Image.Image:
    arr = t.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


def _side(input_size) -> tuple[int, int]:
    """(channels, side) from timm's (C, H, W) or a side; the AlexNets take square inputs."""
    if isinstance(input_size, int):
        return 3, input_size
    c, h, w = input_size
    if h != w:
        raise ValueError(f"input_size {tuple(input_size)}: these networks take square inputs")
    return c, h


def create_transform(
    input_size,
    *,
    mean=(0.485, 0.456, 0.406),
    std=None,
    pixel_scale: float = 255.0,
    channel_order: str = "RGB",
    resize: int | None = None,
    crop_pct: float | None = None,
    train: bool = False,
    is_training: bool | None = None,
    flip: bool = True,
    pca_std: float = 0.1,
    eigval=None,
    eigvec=None,
    stats=None,
    generator: torch.Generator | None = None,
    interpolation: str = "bilinear",
    crop_mode: str = "center",
    **_,
) -> ImageTransform:
    """timm's create_transform, spelled as `create_transform(**resolve_data_config(model), train=...)`.

    Eval: shorter side to `resize` (default input_size / crop_pct), centre crop to that square, then
    the input_size centre crop, then (pixels/255 - mean) * pixel_scale / std in `channel_order`.
    Train (`train=True`, or timm's `is_training=True`): the paper's §4.1 augmentation on the stored
    square instead: a random input_size crop, mirrored with p=0.5 (`flip`), and PCA colour noise of
    std `pca_std` along the RGB eigenvectors: `eigval`/`eigvec`, or those of `stats` (a dict from
    `alexnet.data.compute_stats`, or an `alexnet stats` file), else ImageNet's. `generator` seeds
    the crops (default: torch's global RNG). Bilinear resampling and a centre crop are what the
    weights were evaluated with; other `interpolation`/`crop_mode` values are refused."""
    if interpolation != "bilinear" or crop_mode != "center":
        raise ValueError(
            f"interpolation={interpolation!r}, crop_mode={crop_mode!r}: only 'bilinear' "
            "and 'center' (how every card's weights were evaluated)"
        )
    channels, side = _side(input_size)
    stored = resize or (round(side / crop_pct) if crop_pct else side)
    if stored < side:
        raise ValueError(f"resize {stored} is smaller than the {side}-px crop")
    if stats is not None:
        if isinstance(stats, (str, os.PathLike)):
            stats = load_stats(Path(stats))
        eigval, eigvec = stats["eigval"], stats["eigvec"]
    if eigval is None or eigvec is None or len(eigval) != 3:
        eigval, eigvec = IMAGENET_EIGVAL, IMAGENET_EIGVEC
    norm = Normalizer(
        torch.as_tensor(mean, dtype=torch.float32),
        None if std is None else torch.as_tensor(std, dtype=torch.float32),
        float(pixel_scale),
        bgr=channel_order == "BGR",
    )
    train = bool(is_training) if is_training is not None else train
    pipeline = Pipeline(
        norm,
        crop=side,
        flip=flip and train,
        pca_std=pca_std if train else 0.0,
        eigval=torch.as_tensor(eigval, dtype=torch.float32),
        eigvec=torch.as_tensor(eigvec, dtype=torch.float32),
    )
    return ImageTransform(pipeline, stored, channels, train, generator)
