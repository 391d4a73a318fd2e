"""Bytes -> RGB uint8 tensor at storage size: the only per-image work, done in loader workers.

Paper §2: "we down-sampled the images to a fixed resolution of 256 x 256. Given a rectangular
image, we first rescaled the image such that the shorter side was of length 256, and then
cropped out the central 256x256 patch". Everything after that (random crops, flips, colour
noise, mean subtraction) runs batched on uint8 tensors (transforms.py).
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own bomb threshold (about 0.25 GB of RGB)


class BadImage(ValueError):
    """A file that cannot be used as an image (corrupt, truncated, not an image, a bomb)."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale, CMYK, palette and alpha images become RGB; transparency is laid on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(data: bytes, name: str, resize: int | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode bytes to a loaded PIL image (any mode), refusing bombs; BadImage on failure.
    With `resize`, JPEGs are decoded in DCT-scaled draft mode when the shorter side would still
    be >= resize (1/2, 1/4 or 1/8 of the work for full-size ImageNet photos)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise BadImage(f"{name}: {w}x{h} = {w * h:,} pixels exceeds the limit of "
                               f"{max_pixels:,} (decompression bomb?)")
            if resize and img.format == "JPEG" and resize / min(w, h) < 0.5:
                scale = resize / min(w, h)
                img.draft(img.mode, (max(1, round(w * scale)), max(1, round(h * scale))))
            img.load()
            return img
    except BadImage:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(f"{name}: not a readable image ({type(e).__name__}: {e})") from None


def resize_crop(img: Image.Image, name: str, resize: int | None = 256, crop: int | None = 256,
                rgb: bool = True) -> torch.Tensor:
    """Shorter side to `resize`, centre `crop` x `crop` (None keeps the native size); returns a
    (C, H, W) uint8 tensor, C = 3 (rgb) or the image's own single channel."""
    img = to_rgb(img) if rgb else img.convert("L")
    if resize:
        w, h = img.size
        s = resize / min(w, h)
        size = (max(resize, round(w * s)), max(resize, round(h * s)))
        if crop and crop <= resize:
            # resize only the part the centre crop keeps: the same pixels, a third less work
            left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
            box = (left / s, top / s, (left + crop) / s, (top + crop) / s)
            img = img.resize((crop, crop), Image.BILINEAR, box=box)
            crop = None
        elif size != img.size:
            img = img.resize(size, Image.BILINEAR)
    if crop:
        w, h = img.size
        if w < crop or h < crop:
            raise BadImage(f"{name}: {w}x{h} is smaller than the {crop}x{crop} crop")
        left, top = (w - crop) // 2, (h - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def decode(data: bytes, name: str, resize: int | None = 256, crop: int | None = 256,
           max_pixels: int = DEFAULT_MAX_PIXELS, rgb: bool = True) -> torch.Tensor:
    """Bytes -> (C, crop, crop) uint8 tensor; BadImage for anything unusable."""
    return resize_crop(open_image(data, name, resize, max_pixels), name, resize, crop, rgb)
