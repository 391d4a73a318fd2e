"""A model card: what a set of weights needs at test time and what its outputs mean.

Using the wrong preprocessing silently costs accuracy (Caffe's nets want BGR pixels in 0-255
minus the ImageNet mean; torchvision's want RGB in 0-1 normalised by a std), so the card travels
with the weights — in our checkpoints, in .safetensors metadata — and prediction and evaluation
build their preprocessing from it.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import torch

from .data.transforms import Normalizer, Pipeline
from .jsonio import dumps


@dataclass
class Card:
    model: str
    num_classes: int
    input_size: int
    in_channels: int = 3
    resize: int | None = 256
    mean: list = field(default_factory=lambda: [0.485, 0.456, 0.406])  # RGB, [0, 1] units; or a CxHxW mean image
    std: list | None = None
    pixel_scale: float = 255.0          # network input = (pixel/255 - mean) * pixel_scale / std
    channel_order: str = "RGB"          # the order the network wants its input channels in
    lrn: str | None = "paper"           # LRN convention of the weights, if the net has LRN
    classes: list = field(default_factory=list)
    source: str = ""
    model_kw: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)  # published top-1/top-5 and what they were measured on

    @property
    def stored_size(self) -> int:
        """Side of the square images are decoded to before the crop (native-size datasets such
        as CIFAR have no resize: a stranger's image is brought to the input size)."""
        return self.resize or self.input_size

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("mean", "std"):
            if isinstance(d[k], torch.Tensor):
                d[k] = d[k].tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Card":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("mean", "std"):
            if isinstance(known.get(k), torch.Tensor):
                known[k] = known[k].tolist()
        return cls(**known)

    def to_json(self) -> str:
        return dumps(self.to_dict(), indent=None)

    def pipeline(self) -> Pipeline:
        std = None if self.std is None else torch.tensor(self.std, dtype=torch.float32)
        norm = Normalizer(torch.tensor(self.mean, dtype=torch.float32), std, self.pixel_scale,
                          bgr=self.channel_order == "BGR")
        return Pipeline(norm, crop=self.input_size, flip=False, pca_std=0.0)

    def class_name(self, i: int) -> str:
        return self.classes[i] if i < len(self.classes) else str(i)


def _synsets(text: str, where: str) -> list[tuple[str, str]]:
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


def read_labels(path: str | Path) -> list[str]:
    """Category names from Caffe's synset_words.txt (`n01440764 tench, Tinca tinca` per line) or
    Keras' imagenet_class_index.json (`{"0": ["n01440764", "tench"], ...}`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise FileNotFoundError(f"--labels {path}: cannot read ({e.strerror})") from None
    if path.suffix == ".json":
        try:
            table = json.loads(text)
            return [str(table[str(i)][1]) for i in range(len(table))]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise ValueError(f"--labels {path}: expected Keras' imagenet_class_index.json "
                             '({"0": ["n01440764", "tench"], ...})') from None
    return [name for _, name in _synsets(text, f"--labels {path}")]


@functools.lru_cache(maxsize=1)
def imagenet_categories() -> tuple[tuple[str, str], ...]:
    """The 1000 ILSVRC-2012 classes as (wnid, name), in the standard index order (the wnids
    sorted, as Caffe's synset_words.txt, torchvision and Keras all number them): index 0 is
    ("n01440764", "tench"), 999 is ("n15075141", "toilet tissue")."""
    text = resources.files("alexnet.interop").joinpath("imagenet_synsets.txt").read_text()
    return tuple(_synsets(text, "imagenet_synsets.txt"))


# Caffe's ImageNet mean (ilsvrc_2012_mean.npy averaged per channel), in RGB order and [0, 1] units
CAFFE_MEAN_RGB = [122.7 / 255, 116.7 / 255, 104.0 / 255]
TORCHVISION_MEAN, TORCHVISION_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def caffe_card(model: str, num_classes: int, source: str) -> Card:
    return Card(model, num_classes, 227, mean=list(CAFFE_MEAN_RGB), pixel_scale=255.0,
                channel_order="BGR", lrn="caffe", source=source)


def torchvision_card(num_classes: int, source: str) -> Card:
    return Card("alexnet_owt", num_classes, 224, mean=list(TORCHVISION_MEAN), std=list(TORCHVISION_STD),
                pixel_scale=1.0, lrn=None, source=source)
