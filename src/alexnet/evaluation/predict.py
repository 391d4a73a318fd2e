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


def image_files(paths: list[str]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(Path(d) / f for d, _, fs in os.walk(p) for f in fs if is_image(f))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such image or folder")
    if not files:
        raise ValueError(f"no images found in {', '.join(paths)}")
    return files


def predict(paths: list[str], weights: str, labels: str | None = None, topk: int = 5,
            crops: str = "center", model: str | None = None, batch_size: int = 16,
            progress: bool = True):
    """[(path, [(label, probability), ...], uint8 image)] for every readable image."""
    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    net, card = load_pretrained(weights, model, labels)
    pipeline = card.pipeline()
    files = image_files(paths)
    results = []
    for start in tqdm(range(0, len(files), batch_size), desc="predict", unit="batch",
                      disable=not progress or len(files) <= batch_size):
        imgs, kept = [], []
        for f in files[start:start + batch_size]:
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
        raise BadInput(f"none of the {len(files)} image(s) in {', '.join(paths)[:200]} could be read "
                       "(each is named in a warning above)")
    return results, card
