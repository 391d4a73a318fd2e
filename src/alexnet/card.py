"""A model card: what a set of weights needs at test time and what its outputs mean.

Using the wrong preprocessing silently costs accuracy (Caffe's nets want BGR pixels in 0-255
minus the ImageNet mean; torchvision's want RGB in 0-1 normalised by a std), so the card travels
with the weights — in our checkpoints, in .safetensors metadata — and prediction and evaluation
build their preprocessing from it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .data.decode import decode as decode_image
from .data.preprocess import ImageTransform, create_transform
from .data.transforms import Normalizer, Pipeline
from .errors import BadInput
from .imagenet import imagenet_categories, readable, synsets
from .jsonio import dumps
from .models.registry import LIMITS, create_model, list_models, model_info
from .untrusted import text as read_text
from .untrusted import walk

CARD_DEPTH = 16


@dataclass(kw_only=True)
class Card:
    """Built with keyword arguments only:
    `Card(model="alexnet_owt", num_classes=1000, input_size=224, ...)`."""

    model: str
    num_classes: int
    input_size: int
    in_channels: int = 3
    resize: int | None = 256
    # RGB, [0, 1] units; or a CxHxW mean image
    mean: list = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list | None = None
    pixel_scale: float = 255.0  # network input = (pixel/255 - mean) * pixel_scale / std
    channel_order: str = "RGB"  # the order the network wants its input channels in
    lrn: str | None = "paper"  # LRN convention of the weights, if the net has LRN
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
    def from_dict(cls, d: dict, where: str = "card") -> Card:
        """A card read from a file: every field's type and range checked (BadInput naming `where`)
        before anything is built from it."""
        if not isinstance(d, dict):
            raise BadInput(f"{where}: the model card is a {type(d).__name__}, expected a mapping of fields")
        walk(d, f"{where}: the model card", depth=CARD_DEPTH)  # a mean image is 4 levels deep
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("mean", "std"):
            if isinstance(known.get(k), torch.Tensor):
                known[k] = known[k].tolist()
        missing = [k for k in ("model", "num_classes", "input_size") if k not in known]
        if missing:
            raise BadInput(f"{where}: the model card has no {', '.join(missing)}")
        return cls(**known).validate(where)

    def validate(self, where: str = "card") -> Card:
        def bad(key: str, want: str):
            return BadInput(f"{where}: card {key}={getattr(self, key)!r:.80}: expected {want}")

        if self.model not in list_models():
            raise bad("model", f"one of {', '.join(list_models())}")
        for key in ("num_classes", "input_size", "in_channels"):
            v = getattr(self, key)
            if not _is_int(v) or not 1 <= v <= LIMITS[key]:
                raise bad(key, f"an integer 1..{LIMITS[key]:,}")
        if self.resize is not None and (
            not _is_int(self.resize) or not self.input_size <= self.resize <= LIMITS["input_size"]
        ):
            raise bad(
                "resize",
                f"null or an integer {self.input_size}..{LIMITS['input_size']:,} (at least "
                "the input size: the crop is taken from the stored image)",
            )
        mean = _floats(self.mean)
        if (
            mean is None
            or mean.dim() not in (1, 3)
            or mean.shape[0] != self.in_channels
            or (mean.dim() == 3 and max(mean.shape[1:]) > LIMITS["input_size"])
        ):
            raise bad(
                "mean", f"{self.in_channels} finite numbers, or a {self.in_channels} x H x W mean image"
            )
        std = None if self.std is None else _floats(self.std)
        if self.std is not None and (
            std is None or std.dim() != 1 or len(std) not in (1, self.in_channels) or bool((std <= 0).any())
        ):
            raise bad("std", f"null or {self.in_channels} positive numbers")
        if not _is_number(self.pixel_scale) or not 0 < self.pixel_scale <= 1e4:
            raise bad("pixel_scale", "a number in (0, 10000]")
        if self.channel_order not in ("RGB", "BGR"):
            raise bad("channel_order", "RGB or BGR")
        if self.lrn not in (None, "paper", "caffe"):
            raise bad("lrn", "null, paper or caffe")
        if (
            not isinstance(self.classes, list)
            or not all(isinstance(c, str) for c in self.classes)
            or (self.classes and len(self.classes) != self.num_classes)
        ):
            raise bad("classes", f"a list of {self.num_classes} names (or an empty list)")
        if not isinstance(self.model_kw, dict) or not all(isinstance(k, str) for k in self.model_kw):
            raise bad("model_kw", "a mapping of model options")
        twice = sorted({"num_classes", "in_channels"} & set(self.model_kw))
        if twice:
            raise bad(
                "model_kw",
                f"model options other than {' and '.join(twice)} (the card's own field"
                f"{'s' if len(twice) > 1 else ''}, given once)",
            )
        if not isinstance(self.source, str):
            raise bad("source", "a string")
        if not isinstance(self.accuracy, dict):
            raise bad("accuracy", "a mapping")
        return self

    def to_json(self) -> str:
        return dumps(self.to_dict(), indent=None)

    def data_config(self) -> dict:
        """What `create_transform(**cfg)` takes, in timm's keys (input_size as (C, H, W), mean,
        std, crop_pct, interpolation) and ours (resize: the stored side; pixel_scale; channel_order)."""
        return dict(
            input_size=(self.in_channels, self.input_size, self.input_size),
            resize=self.stored_size,
            mean=self.mean,
            std=self.std,
            pixel_scale=self.pixel_scale,
            channel_order=self.channel_order,
            crop_pct=round(self.input_size / self.stored_size, 4),
            interpolation="bilinear",
            crop_mode="center",
        )

    def transforms(self, train: bool = False, **kw) -> ImageTransform:
        """The preprocessing these weights want, as one callable: a PIL image, a uint8 (C, H, W) or
        (N, C, H, W) tensor, or an image file's path -> the normalised float tensor, the same
        numbers `alexnet predict` computes. train=True: the paper's augmentation (§4.1) instead
        of the centre crop; `kw` goes to create_transform (flip, pca_std, eigval/eigvec, stats)."""
        return create_transform(**self.data_config(), train=train, **kw)

    def pipeline(self) -> Pipeline:
        std = None if self.std is None else torch.tensor(self.std, dtype=torch.float32)
        norm = Normalizer(
            torch.tensor(self.mean, dtype=torch.float32),
            std,
            self.pixel_scale,
            bgr=self.channel_order == "BGR",
        )
        return Pipeline(norm, crop=self.input_size, flip=False, pca_std=0.0)

    def decode(self, raw: bytes, name: str) -> torch.Tensor:
        """An image file's bytes as these weights see them before the crop: (C, S, S) uint8 at the
        stored size, grey or RGB as the network takes; BadImage for anything unusable (the same
        checks as every file the package reads)."""
        return decode_image(raw, name, self.stored_size, self.stored_size, rgb=self.in_channels == 3)

    def check_channels(self, channels: int, data: str, weights: str) -> None:
        """The data's images must have the channels the network takes (grey Fashion-MNIST to an
        RGB network is refused here, not by a shape error in the first batch)."""
        if channels != self.in_channels:
            raise BadInput(
                f"--data {data}: {channels}-channel images, but {weights} takes "
                f"{self.in_channels}-channel input"
            )

    def class_name(self, i: int) -> str:
        """Output i's name: ImageNet's for a WordNet id (class folders named n01440764), the
        card's own otherwise, the number when the card names no classes."""
        return readable(self.classes[i]) if i < len(self.classes) else str(i)

    def class_index(self, key: str) -> int | None:
        """The output a class folder name or WordNet id stands for (None: not one of ours)."""
        if key in self.classes:
            return self.classes.index(key)
        ids = [w for w, _ in imagenet_categories()]
        names = [n for _, n in imagenet_categories()]
        if key in ids and self.classes == names:  # ImageNet's 1000, named rather than numbered by id
            return ids.index(key)
        return None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _floats(v) -> torch.Tensor | None:
    """A (nested) list of finite numbers as a tensor, or None."""
    try:
        t = torch.tensor(v, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        return None
    return t if t.numel() and bool(torch.isfinite(t).all()) else None


def read_labels(path: str | Path) -> list[str]:
    """Category names from Caffe's synset_words.txt (`n01440764 tench, Tinca tinca` per line) or
    Keras' imagenet_class_index.json (`{"0": ["n01440764", "tench"], ...}`)."""
    return [name for _, name in read_synsets(path)]


def names_for(card: Card, path: str | Path, flag: str = "--class-names") -> list[str]:
    """The card's classes named from a synset file: by WordNet id when the card's classes are
    ids in the file (a 10-class net trained on n01440764/... folders takes its ten lines of the
    full 1000-line synset_words.txt), else line by line when the counts agree."""
    pairs = read_synsets(path, flag)
    by_id = dict(pairs)
    if card.classes and all(c in by_id for c in card.classes):
        return [by_id[c] for c in card.classes]
    if len(pairs) != card.num_classes:
        ids = " (its classes are not WordNet ids of the file)" if card.classes else ""
        raise ValueError(f"{flag} {path}: {len(pairs)} names for a {card.num_classes}-class network{ids}")
    return [name for _, name in pairs]


def read_synsets(path: str | Path, flag: str = "--class-names") -> list[tuple[str, str]]:
    """(WordNet id, name) per class of synset_words.txt or imagenet_class_index.json."""
    path = Path(path)
    try:
        text = read_text(path, f"{flag} {path}")
    except OSError as e:
        msg = str(e) if str(e).startswith(flag) else f"{flag} {path}: cannot read ({e.strerror or e})"
        raise FileNotFoundError(msg) from None
    if path.suffix == ".json":
        try:
            table = json.loads(text)
            return [(str(table[str(i)][0]), str(table[str(i)][1])) for i in range(len(table))]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise ValueError(
                f"{flag} {path}: expected Keras' imagenet_class_index.json "
                '({"0": ["n01440764", "tench"], ...})'
            ) from None
    return synsets(text, f"{flag} {path}")


# Caffe's ImageNet mean (ilsvrc_2012_mean.npy averaged per channel), in RGB order and [0, 1] units
CAFFE_MEAN_RGB = [122.7 / 255, 116.7 / 255, 104.0 / 255]
TORCHVISION_MEAN, TORCHVISION_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def caffe_card(model: str, num_classes: int, source: str) -> Card:
    return Card(
        model=model,
        num_classes=num_classes,
        input_size=227,
        mean=list(CAFFE_MEAN_RGB),
        pixel_scale=255.0,
        channel_order="BGR",
        lrn="caffe",
        source=source,
    )


def torchvision_card(num_classes: int, source: str) -> Card:
    return Card(
        model="alexnet_owt",
        num_classes=num_classes,
        input_size=224,
        mean=list(TORCHVISION_MEAN),
        std=list(TORCHVISION_STD),
        pixel_scale=1.0,
        lrn=None,
        source=source,
    )


def keras_card(classes: int, in_ch: int, source: str, model_kw: dict) -> Card:
    """The Keras tutorials feed RGB pixels scaled to [0, 1] (ImageDataGenerator(rescale=1/255))
    with no mean subtraction; edit the card if your network was trained otherwise."""
    return Card(
        model="alexnet_bn",
        num_classes=classes,
        input_size=227,
        in_channels=in_ch,
        mean=[0.0] * in_ch,
        std=None,
        pixel_scale=1.0,
        lrn=None,
        source=source,
        model_kw=model_kw,
    )


# Before any weights, a model preprocesses as its training recipe does (training/config.py PRESETS,
# with ImageNet's channel means where a run would compute its data's mean image; a test keeps the
# two in step); the nets with published weights as those weights want (Caffe's BGR, torchvision's std).
_RECIPE_CARDS = {
    "alexnet": dict(),  # §2: 256 stored, 0-255 pixels minus the mean
    "alexnet_bn": dict(lrn=None),
    "alexnet_d2l": dict(resize=224, pixel_scale=1.0, lrn=None),
    "cifar_convnet": dict(resize=None, pixel_scale=1.0, lrn="caffe"),
    "cifar_local_11pct": dict(resize=None, lrn="caffe"),  # the cuda-convnet preset: 0-255 minus the mean
    "cifar_local_13pct": dict(resize=None, lrn=None),
}


def default_card(
    model: str, num_classes: int | None = None, in_channels: int | None = None, model_kw: dict | None = None
) -> Card:
    """The card of an untrained `model` (what resolve_data_config gives for it)."""
    kw = {k: v for k, v in (model_kw or {}).items() if k not in ("seed", "init")}
    with torch.device("meta"):
        net = create_model(model, num_classes=num_classes, in_channels=in_channels, **kw)
    weights = model_info(model).weights
    if weights == "torchvision":
        card = torchvision_card(net.num_classes, "")
    elif weights:
        card = caffe_card(model, net.num_classes, "")
    else:
        card = Card(
            model=model, num_classes=net.num_classes, input_size=net.input_size, **_RECIPE_CARDS[model]
        )
    c = net.in_channels
    if c != len(card.mean):  # one channel (or more than three): the recipes' 0.5, the weights' average
        card.mean = [round(sum(card.mean) / len(card.mean), 4) if weights else 0.5] * c
        card.std = None if card.std is None else [round(sum(card.std) / len(card.std), 4)] * c
    card.in_channels, card.model_kw = c, dict(model_kw or {})
    return card.validate(f"the default card of {model}")


def resolve_data_config(
    args: dict | nn.Module | None = None,
    pretrained_cfg: Card | dict | None = None,
    model: nn.Module | None = None,
    **_,
) -> dict:
    """timm's resolve_data_config: the preprocessing settings of `model` (its card, `model.pretrained_cfg`,
    once weights are loaded; else its architecture's default), with `args` (a dict: input_size, mean,
    std, crop_pct, ...) overriding. `resolve_data_config(model)` and `resolve_data_config({}, model=model)`
    both work. Feed the result to `create_transform(**cfg)`."""
    if isinstance(args, nn.Module):
        args, model = None, args
    if isinstance(pretrained_cfg, dict):
        pretrained_cfg = Card.from_dict(pretrained_cfg, "pretrained_cfg")
    card = pretrained_cfg or getattr(model, "pretrained_cfg", None)
    if card is None:
        if model is None:
            raise ValueError("resolve_data_config: give a model (or a pretrained_cfg)")
        name = getattr(model, "name", None)
        card = default_card(
            name,
            getattr(model, "num_classes", None) or None,
            model.in_channels,
            getattr(model, "model_kw", None),
        )
    cfg = card.data_config()
    cfg.update({k: v for k, v in (args or {}).items() if k in cfg and v is not None})
    return cfg
