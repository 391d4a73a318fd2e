"""`alexnet predict`: the top-k labels of images or folders of images, with the weights' own
preprocessing (from their card), optionally drawn as in paper Fig. 4 (left)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.decode import BadImage
from ..data.sources import is_image, read_regular
from ..errors import BadInput
from ..interop.pretrained import load_pretrained
from .metrics import predict_probs


def image_files(paths: list[str | os.PathLike]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(Path(d) / f for d, _, fs in os.walk(p) for f in fs if is_image(f))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such image or folder")
    if not files:
        raise ValueError(f"no images found in {', '.join(map(str, paths))}")
    return files


def true_label(path: str | Path, card) -> str | None:
    """The class an image is known to be of, as predictions name it: its folder's name
    (<class>/x.jpg) or an ImageNet file name's WordNet id (n01440764_10026.JPEG), when the network
    has that class; None otherwise (Fig. 4 then marks no bar red)."""
    path = Path(path)
    for key in (path.parent.name, path.name.split("_")[0]):
        i = card.class_index(key) if key else None
        if i is not None:
            return card.class_name(i)
    return None


def predict(
    paths: list[str | os.PathLike],
    weights: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    topk: int = 5,
    crops: str = "center",
    model: str | None = None,
    batch_size: int = 16,
    progress: bool = True,
):
    """[(path, [(label, probability), ...], uint8 image)] for every readable image."""
    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    net, card = load_pretrained(weights, model, labels)
    pipeline = card.pipeline()
    files = image_files(paths)
    results = []
    for start in tqdm(
        range(0, len(files), batch_size),
        desc="predict",
        unit="batch",
        disable=not progress or len(files) <= batch_size,
    ):
        imgs, kept = [], []
        for f in files[start : start + batch_size]:
            try:
                raw = read_regular(f, str(f))  # a FIFO among the images must not block
                imgs.append(card.decode(raw, str(f)))
                kept.append(f)
            except (BadImage, OSError) as e:
                warnings.warn(f"skipping {e}", stacklevel=2)
        if not imgs:
            continue
        probs = predict_probs([net], torch.stack(imgs), pipeline, crops)
        p, idx = probs.topk(min(topk, probs.shape[1]), dim=1)
        for f, img, pr, ix in zip(kept, imgs, p.tolist(), idx.tolist()):
            results.append((f, [(card.class_name(i), v) for i, v in zip(ix, pr)], img))
    if not results:
        raise BadInput(
            f"none of the {len(files)} image(s) in {', '.join(map(str, paths))[:200]} could be "
            "read (each is named in a warning above)"
        )
    return results, card
