"""A torchvision-style Dataset over every source the command line reads: a folder of
<class>/<image> (or train/ and val/ splits of them), a .tar, shards (`train-{000..009}.tar` or a
glob), a folder of `alexnet prepare` shards, the CIFAR-10 python archive, a Fashion-MNIST IDX
folder. Items are (transform(image), class index), so a plain `torch.utils.data.DataLoader` batches
them; classes are numbered as `alexnet train` numbers them (sorted names, matched across splits).

    ds = ImageFolder("flowers/", "train", transform=alexnet.create_transform(**cfg, train=True))
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=2)
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .dataset import open_source
from .decode import DEFAULT_MAX_PIXELS, load_image, open_lazy, resize_crop
from .sources import ArraySource, Source


class ImageFolder(Dataset):
    """`root` with `split` ("train", "val"/"test"; None: the whole of a folder without splits).

    transform: called with the image (a PIL image, decoded as `alexnet predict` decodes files;
        a uint8 (C, H, W) tensor for sources of decoded arrays: CIFAR-10, Fashion-MNIST);
        default: the image as a uint8 (C, H, W) tensor at its own size.
    target_transform: called with the class index.
    classes: a reference class list (a pretrained card's, the training split's): labels become
        positions in it, matched by name. Other arguments as `alexnet.data.open_source`.
    A file that cannot be decoded raises BadImage naming it."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        *,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        classes: list[str] | None = None,
        labels_file: str | os.PathLike | None = None,
        download: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.root = os.fspath(root)
        self.source: Source = open_source(self.root, split, labels_file, download, classes)
        self.transform, self.target_transform, self.max_pixels = transform, target_transform, max_pixels

    @property
    def classes(self) -> list[str]:
        return self.source.classes

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    @property
    def targets(self) -> list[int]:
        return self.source.labels.tolist()

    def __len__(self) -> int:
        return len(self.source)

    def load(self, i: int):
        """Item i's image before the transform: a PIL image, or a uint8 (C, H, W) tensor."""
        src = self.source
        raw = src.read(i)
        if isinstance(src, ArraySource):
            return torch.from_numpy(np.ascontiguousarray(raw))
        # opened, not decoded: the transform decodes JPEGs at the scale it needs, as predict does
        return open_lazy(raw, src.names[i], self.max_pixels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.load(i)
        if self.transform is not None:
            x = self.transform(img)
        elif isinstance(img, Image.Image):  # its own size, RGB (or grey for grey data)
            x = resize_crop(
                load_image(img, self.source.names[i]),
                self.source.names[i],
                None,
                None,
                rgb=self.source.channels == 3,
            )
        else:
            x = img
        y = int(self.source.labels[i])
        return x, (self.target_transform(y) if self.target_transform is not None else y)

    def __repr__(self) -> str:
        split = f", split={self.source.split!r}" if self.source.split else ""
        return f"ImageFolder({self.root!r}{split}: {len(self)} images, {len(self.classes)} classes)"
