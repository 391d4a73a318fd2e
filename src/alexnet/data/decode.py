"""Bytes -> RGB uint8 tensor at storage size: the only per-image work, done in loader workers.

Paper §2: "we down-sampled the images to a fixed resolution of 256 x 256. Given a rectangular
image, we first rescaled the image such that the shorter side was of length 256, and then
cropped out the central 256x256 patch". Everything after that (random crops, flips, colour
noise, mean subtraction) runs batched on uint8 tensors (transforms.py).
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own bomb threshold (about 0.25 GB of RGB)


class BadImage(ValueError):
    """A file that cannot be used as an image (corrupt, truncated, not an image, a bomb)."""


def _why(e: Exception) -> str:
    """Pillow's reason, without the in-memory object it names ("<_io.BytesIO object at 0x...>")."""
    if isinstance(e, UnidentifiedImageError):
        return "not an image format Pillow knows"
    return f"{type(e).__name__}: {e}"


STRIP = 1 << 18  # pixels converted at a time: the temporaries of to_8bit stay a few MB


def to_8bit(img: Image.Image) -> Image.Image:
    """16- and 32-bit integer and float images (PNG I;16, TIFF I/F) as 8-bit grey, scaled from
    the range of their type: Pillow's own conversion clips instead, so a 16-bit mid-grey (32768)
    would turn white. Integers: 16-bit 0..65535, 32-bit 0..2^32-1 (0..2^31-1 when the TIFF says
    signed, negatives are 0); floats: 0..1, the convention of float images.

    Converted a strip of rows at a time into one uint8 array, integers in integer arithmetic
    (round(v * 255 / top) is (v * 255 + top // 2) // top: top = 2^bits - 1 is odd, so no value
    is halfway), so an image at the pixel limit costs its own bytes plus one byte a pixel, not
    several float64 copies of itself."""
    if not (img.mode.startswith("I;16") or img.mode in ("I", "F")):
        return img
    top = None
    if img.mode != "F":
        tags = getattr(img, "tag_v2", {})
        bits = 16 if img.mode.startswith("I;16") or img.format == "PNG" else _first(tags.get(258), 32)
        signed = _first(tags.get(339), 1) == 2
        top = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    w, h = img.size
    out = np.empty((h, w), np.uint8)
    step = max(1, STRIP // max(w, 1))
    for y in range(0, h, step):  # in place: one working copy of the strip
        strip = np.asarray(img.crop((0, y, w, min(h, y + step))))
        if top is None:  # float: the float64 arithmetic of the 0..1 convention
            v = np.nan_to_num(strip.astype(np.float64), copy=False, nan=0.0)
            np.clip(v, 0, 1, out=v)
            v *= 255
            np.rint(v, out=v)
        else:  # "I" holds int32: the unsigned 32-bit values above 2^31 come back negative
            v = strip.view(np.uint32) if top == 2**32 - 1 and strip.dtype.itemsize == 4 else strip
            v = v.astype(np.int64 if top >= 2**16 else np.int32)
            np.clip(v, 0, top, out=v)
            v *= 255
            v += top // 2
            v //= top
        out[y : y + step] = v
    return Image.fromarray(out)  # shares `out`: no second copy


def _first(v, default):
    """A TIFF tag's value (Pillow gives a tuple for per-sample tags)."""
    v = v[0] if isinstance(v, tuple) and v else v
    return v if isinstance(v, int) else default


def orient(img: Image.Image) -> Image.Image:
    """Turn the picture as its EXIF Orientation tag says (cameras store it sideways and set the
    tag): what every viewer shows is what the network sees. A malformed EXIF block is ignored."""
    try:
        o = img.getexif().get(0x0112, 1)
    except (ValueError, OSError, SyntaxError, struct.error, KeyError, TypeError, IndexError):
        return img
    return ImageOps.exif_transpose(img) if o in (2, 3, 4, 5, 6, 7, 8) else img


def to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale, CMYK, palette and alpha images become RGB; transparency is laid on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


_PIL_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def open_lazy(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Bytes -> a PIL image whose header is read and size checked (bombs refused), not yet
    decoded (load_image decodes it); BadImage on failure."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except _PIL_ERRORS as e:
        raise BadImage(f"{name}: not a readable image ({_why(e)})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise BadImage(
            f"{name}: {w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} (decompression bomb?)"
        )
    return img


def load_image(img: Image.Image, name: str, resize: int | None = None) -> Image.Image:
    """Decode an opened PIL image (a no-op once loaded) and turn it as its EXIF says; BadImage on
    failure. With `resize`, JPEGs are decoded in DCT-scaled draft mode when the shorter side would
    still be >= resize (1/2, 1/4 or 1/8 of the work for full-size ImageNet photos)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            w, h = img.size
            if resize and img.format == "JPEG" and resize / min(w, h) < 0.5:
                scale = resize / min(w, h)
                img.draft(img.mode, (max(1, round(w * scale)), max(1, round(h * scale))))
            img.load()
            return orient(img)
    except _PIL_ERRORS as e:
        raise BadImage(f"{name}: not a readable image ({_why(e)})") from None


def open_image(
    data: bytes, name: str, resize: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode bytes to a loaded PIL image (any mode), refusing bombs; BadImage on failure."""
    return load_image(open_lazy(data, name, max_pixels), name, resize)


def resize_crop(
    img: Image.Image,
    name: str,
    resize: int | None = 256,
    crop: int | None = 256,
    rgb: bool = True,
    fit: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Shorter side to `resize`, centre `crop` x `crop` (None keeps the native size); returns a
    (C, H, W) uint8 tensor, C = 3 (rgb) or the image's own single channel. `fit` (W, H): at
    native size, an image of another size is scaled to cover W x H and centre-cropped to it, with
    a warning, so that one odd file cannot break a batch of equal-sized ones."""
    img = to_8bit(img)
    img = to_rgb(img) if rgb else img.convert("L")
    if fit and not resize and not crop and img.size != tuple(fit):
        (w, h), (fw, fh) = img.size, fit
        warnings.warn(
            f"{name}: {w}x{h}, not the {fw}x{fh} of this dataset's images; scaled and "
            f"centre-cropped to {fw}x{fh}",
            stacklevel=2,
        )
        s = max(fw / w, fh / h)
        # the box in source pixels, clamped to the image: (h * s - fh) / 2 can round to -2e-15
        # (a 500x347 photo brought to 32x32), which Pillow refuses as a negative offset
        bw, bh = min(w, fw / s), min(h, fh / s)
        left, top = max(0.0, (w - bw) / 2), max(0.0, (h - bh) / 2)
        img = img.resize((fw, fh), Image.BILINEAR, box=(left, top, left + bw, top + bh))
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


def decode(
    data: bytes,
    name: str,
    resize: int | None = 256,
    crop: int | None = 256,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    rgb: bool = True,
    fit: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Bytes -> (C, crop, crop) uint8 tensor; BadImage for anything unusable."""
    return resize_crop(open_image(data, name, resize, max_pixels), name, resize, crop, rgb, fit)


def peek_size(data: bytes, name: str) -> tuple[int, int]:
    """(W, H) as decoded (EXIF orientation applied), from the header alone."""
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        o = img.getexif().get(0x0112, 1)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
        KeyError,
        TypeError,
        IndexError,
        Image.DecompressionBombError,
    ) as e:
        raise BadImage(f"{name}: not a readable image ({_why(e)})") from None
    return (h, w) if o in (5, 6, 7, 8) else (w, h)
