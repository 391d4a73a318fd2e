"""FOLDER: the images a learner explores, and which of their patches drive each channel most.

The folder is listed once, at start (with the data scan's symlink rules), and only the files of
that list are ever read or served: a name from a browser is looked up in it, never joined to
a path, so "../" or an absolute name reaches nothing. The patch index is filled by one
background pass over the folder (a forward per image, every stage's strongest unit per channel
kept), as Zeiler & Fergus (2014, Fig. 2) find the top validation images of a feature map."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..data.index import image_tree
from ..data.sources import follow_default, read_regular
from ..errors import BadInput

MAX_IMAGES = 100_000  # a page lists at most this many; the rest of a huge folder is left out


class Folder:
    def __init__(self, root: str | Path, follow_symlinks: bool | None = None, limit: int = MAX_IMAGES):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BadInput(f"--images {root}: not a folder of images")
        names, skipped = image_tree(self.root, follow_default(follow_symlinks))
        names = [n for n in names if _printable(n)]  # a page shows names as UTF-8 text
        if len(names) > limit:
            warnings.warn(
                f"--images {root}: {len(names):,} images; the first {limit:,} are shown", stacklevel=2
            )
        self.names = names[:limit]
        self.position = {n: i for i, n in enumerate(self.names)}
        self.skipped = {k: v[0] for k, v in skipped.items()}

    def __len__(self) -> int:
        return len(self.names)

    def read(self, name: str) -> bytes:
        """The bytes of a listed image (LookupError for any other name)."""
        if name not in self.position:
            raise LookupError(f"{name[:200]!r}: not an image of the folder")
        return read_regular(os.path.join(self.root, name), name)

    def search(self, text: str, offset: int, limit: int) -> tuple[int, list[str]]:
        hits = [n for n in self.names if text.lower() in n.lower()] if text else self.names
        return len(hits), hits[offset : offset + limit]


def _printable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in a file name (kept as surrogates)
        return False
    return True


class TopPatches:
    """For every stage and channel, each image's strongest unit: its value and where it is."""

    def __init__(self, n: int, shapes: list[tuple[int, int, int]]):
        self.value = [np.full((n, c), -np.inf, np.float32) for c, _, _ in shapes]
        self.where = [np.zeros((n, c), np.int32) for c, _, _ in shapes]
        self.widths = [w for _, _, w in shapes]
        self.done = 0  # images looked at so far (readable or not)
        self.unreadable = 0

    def add(self, rows: list[int], outs: list) -> None:
        """outs: every stage's output (B, C, H, W) for the images at `rows` of the folder."""
        for s, o in enumerate(outs):
            top, at = o.flatten(2).max(2)
            self.value[s][rows] = top.float().numpy()
            self.where[s][rows] = at.numpy()

    def top(self, stage: int, c: int, k: int = 9) -> list[tuple[int, float, int, int]]:
        """(image, value, y, x) of the k images whose strongest unit in channel c is largest."""
        v = self.value[stage][:, c]
        order = np.argsort(-v, kind="stable")[:k]
        w = self.widths[stage]
        return [
            (int(i), float(v[i]), *divmod(int(self.where[stage][i, c]), w))
            for i in order
            if np.isfinite(v[i])
        ]
