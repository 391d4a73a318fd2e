"""Every setting of a run, resolved once, with where it came from.

A model carries its default recipe, as timm's pretrained configs and torchvision's weight
transforms do: `--model cifar_convnet` alone trains like the cifar10-quick preset (0-1 pixels,
lr 0.05, native 32 px), not like the ImageNet paper recipe (0-255 pixels, lr 0.01, PCA noise,
images upsampled to 256), which cannot learn that net in any reasonable time.

Layers, lowest first: TrainConfig defaults <- the model's recipe (only when no --preset is
given) or the preset <- the --config file <- keyword values <- command-line flags. Then what is
still unset is derived: the crop from the model's input size, the stored size from the data's
native size. The result remembers each setting's source (`TrainConfig.resolved_from`), is
printed once, and is written to RUN/config.yaml.
"""

from __future__ import annotations

import io

import torch
from PIL import Image

from ..data import open_source
from ..data.sources import ArraySource
from ..errors import BadInput
from ..models import create_model, list_models, model_info
from ..models.init import named_weight_layers

# settings a recipe never imposes on an explicitly named model or dataset
_NOT_FROM_RECIPE = ("model",)
# fine-tuning from pretrained weights (finetune_defaults), chosen by measurement (docs/analysis.md,
# benchmarks/finetune_defaults.py): the recipe's lr / 10 for the pretrained layers keeps them from
# being wrecked by a rate made for random weights, and the new output layer x 10 (the recipe's own
# rate) learns as fast as from scratch; without that multiplier it learned clearly less
FINETUNE = {"lr_factor": 0.1, "head_lr_mult": 10.0, "train_layers": "all"}
_SAMPLE = 16  # images looked at to learn the data's native size


def native_size(data: str, labels: str | None = None) -> tuple[int, int] | None:
    """(width, height) shared by a sample of the training images, or None when they differ or
    cannot be read (photos of every size: ImageNet). Reads image headers only."""
    src = open_source(data, "train", labels, download=False)
    if isinstance(src, ArraySource):
        _, _, h, w = src.images.shape
        return w, h
    step = max(1, len(src) // _SAMPLE)
    sizes = set()
    for i in range(0, min(len(src), step * _SAMPLE), step):
        try:
            with Image.open(io.BytesIO(src.read(i))) as img:
                sizes.add(img.size)
        except Exception:  # noqa: BLE001 - an unreadable file says nothing about the size
            continue
        if len(sizes) > 1:
            return None
    return sizes.pop() if len(sizes) == 1 else None


def meta_model(name: str, model_kw: dict):
    """The model built without memory (meta device): its input size and layer names."""
    kw = {k: v for k, v in model_kw.items() if k not in ("seed", "init")}
    try:
        with torch.device("meta"):
            return create_model(name, **kw)
    except (TypeError, ValueError) as e:  # checked here already: the settings are being resolved
        what = f"config model_kw={model_kw!r:.120}" if name in list_models() else "config model"
        raise BadInput(f"{what}: {e}") from None


def model_input_size(name: str, model_kw: dict) -> int:
    """The model's own input side."""
    return meta_model(name, model_kw).input_size


def finetune_defaults(values: dict, source: dict[str, str]) -> None:
    """A start from pretrained weights changes the recipe (it was made for random weights):
    FINETUNE's lr factor on a recipe's or preset's lr (not on one given), the new output layer's
    multiplier, and the layers trained, each unless given. Measured in docs/analysis.md."""
    head = list(named_weight_layers(meta_model(values["model"], values.get("model_kw") or {})))[-1]
    why = (
        f"fine-tuning defaults (the recipe's lr x {FINETUNE['lr_factor']:g}, the new {head} "
        f"x {FINETUNE['head_lr_mult']:g})"
    )
    if source["lr"] == "default" or source["lr"].startswith(("recipe ", "preset ")):
        values["lr"], source["lr"] = values["lr"] * FINETUNE["lr_factor"], why
    if source["lr_mult"] == "default":
        values["lr_mult"], source["lr_mult"] = {head: FINETUNE["head_lr_mult"]}, why
    if source["train_layers"] == "default":
        values["train_layers"], source["train_layers"] = FINETUNE["train_layers"], why


def resolve(
    explicit: dict[str, tuple[object, str]], preset: str | None, presets: dict, defaults: dict
) -> tuple[dict, dict[str, str]]:
    """explicit: {key: (value, source)} from the preset/file/values/flags layers.
    Returns (values, {key: source}) for every setting."""
    values = {k: v for k, v in defaults.items()}
    source = {k: "default" for k in defaults}
    model = explicit["model"][0] if "model" in explicit else defaults["model"]
    if preset is None:
        recipe = model_info(model).recipe
        for k, v in presets.get(recipe, {}).items():
            if k in _NOT_FROM_RECIPE:
                continue
            values[k], source[k] = v, f"recipe {recipe} (the default for {model})"
    for k, (v, where) in explicit.items():
        values[k], source[k] = v, where
    # derived settings: only what no layer above set explicitly
    if values.get("crop") is None and "crop" not in explicit:
        values["crop"] = model_input_size(values["model"], values.get("model_kw") or {})
        source["crop"] = f"the input size of {values['model']}"
    if values.get("init_from"):
        finetune_defaults(values, source)
    if "resize" not in explicit and values.get("data") and not values.get("init_from"):
        values["resize"], why = _stored_size(values, source["resize"])
        if why:
            source["resize"] = why
    return values, source


def _stored_size(values: dict, resize_source: str) -> tuple[int | None, str | None]:
    """The side images are stored at (None: native). The recipe asks for native size (CIFAR
    recipes) or for 256 (§2, the ImageNet recipes); the data decides whether that works."""
    crop, wanted = values["crop"], values["resize"]
    try:
        native = native_size(values["data"], values.get("labels"))
    except (OSError, ValueError):  # not readable yet (a dataset name to download): keep the recipe
        return wanted, None
    if wanted is None:  # the recipe wants native size
        if native is not None and min(native) >= crop:
            return None, f"the data's native size ({native[0]}x{native[1]} images)"
        # photos of mixed sizes, or images smaller than the crop: a little more than the crop,
        # as 256 is to 224 (the margin the random crops of §4.1 move in)
        side = max(crop, round(crop * 256 / 224))
        why = "mixed sizes" if native is None else f"{native[0]}x{native[1]}"
        return side, f"the data ({why}) for a {crop}-px crop"
    if wanted < crop:
        return crop, f"the {crop}-px crop (the recipe's {wanted} is smaller)"
    return wanted, None


def describe(values: dict, source: dict[str, str], defaults: dict) -> list[str]:
    """Lines saying what was resolved from where (defaults not shown)."""
    groups: dict[str, list[str]] = {}
    for f in values:  # in TrainConfig's order: values is a config's to_dict()
        where = source.get(f, "default")
        if f == "resolved_from" or (where == "default" and f not in ("resize", "crop")):
            continue
        groups.setdefault(where, []).append(f"{f}={_fmt(values[f])}")
    return [f"  {where}: {' '.join(items)}" for where, items in groups.items()]


def _fmt(v: object) -> str:
    if v is None:
        return "None"
    return f"{v:g}" if isinstance(v, float) else str(v)
