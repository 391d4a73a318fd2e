"""The 1000 classes of ILSVRC-2012, the paper's data (§2), by WordNet id and name, and the
format they ship in (Caffe's synset_words.txt): what cards, weights readers and data sources
share without depending on each other."""

from __future__ import annotations

import functools
from importlib import resources


def synsets(text: str, where: str) -> list[tuple[str, str]]:
    """(wnid, first name) per line of Caffe's synset_words.txt: `n01440764 tench, Tinca tinca`."""
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{where}:{n}: expected '<wnid> <names>', got {line!r}")
        pairs.append((parts[0], parts[1].split(",")[0].strip()))
    return pairs


@functools.lru_cache(maxsize=1)
def imagenet_categories() -> tuple[tuple[str, str], ...]:
    """The 1000 ILSVRC-2012 classes as (wnid, name), in the standard index order (the wnids
    sorted, as Caffe's synset_words.txt, torchvision and Keras all number them): index 0 is
    ("n01440764", "tench"), 999 is ("n15075141", "toilet tissue")."""
    text = resources.files(__package__).joinpath("imagenet_synsets.txt").read_text()
    return tuple(synsets(text, "imagenet_synsets.txt"))


def readable(name: str) -> str:
    """ImageNet's name for a WordNet id ("n01440764" -> "tench"); any other name as it is."""
    return _imagenet_names().get(name, name) if name[:1] == "n" and name[1:].isdigit() else name


@functools.lru_cache(maxsize=1)
def _imagenet_names() -> dict[str, str]:
    return dict(imagenet_categories())
