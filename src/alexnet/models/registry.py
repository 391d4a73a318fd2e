"""A timm-style registry: `create_model(name, **overrides)` and `list_models()`."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import BadInput
from .init import INITS, init_weights


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    factory: Callable[..., nn.Module]
    default_init: str
    recipe: str = "paper"  # the training preset a bare `--model NAME` gets (timm's pretrained_cfg idea)

    @property
    def options(self) -> dict[str, object]:
        """The overrides this model accepts, with their defaults."""
        sig = inspect.signature(self.factory)
        opts = {k: p.default for k, p in sig.parameters.items()}
        opts.update(init=self.default_init, seed=None)
        return opts


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(description: str, *, default_init: str = "kaiming", recipe: str = "paper"):
    """Decorator for a factory `fn(num_classes, in_channels, **options) -> ConvNet`. `recipe`
    names the training preset whose settings the model gets when no preset is given."""
    def wrap(fn):
        _REGISTRY[fn.__name__] = ModelInfo(fn.__name__, description, fn, default_init, recipe)
        return fn
    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _REGISTRY[name]


# Sizes from a flag, a card or a file are checked before anything is built. fc8 alone holds
# 4096 x num_classes floats: 150,000 classes are 2.5 GB, 10^7 are 164 GB. ImageNet-21k's 21,841
# classes are the most AlexNet is trained on; 100,000 leaves room (fc8 1.6 GB, the whole net
# 1.9 GB in fp32, plus as much again for gradients and momentum). Input sides follow the largest
# stored size a config accepts (8192); 1024 input channels cover hyperspectral images (conv1:
# 12M weights). No model's other options change its size by more than a few percent.
LIMITS = {"num_classes": 100_000, "in_channels": 1024, "input_size": 8192}


def _check_value(name: str, key: str, value: object) -> None:
    if key in LIMITS:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= LIMITS[key]:
            raise BadInput(f"{name}: {key} must be an integer 1..{LIMITS[key]:,}, got {value!r:.40}")
    elif key == "dropout":
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"{name}: dropout must be a probability in [0, 1), got {value!r}")
    elif key == "init" and value not in INITS:
        raise ValueError(f"{name}: init must be one of {INITS}, got {value!r}")
    elif key == "seed" and value is not None and not isinstance(value, int):
        raise ValueError(f"{name}: seed must be an integer or None, got {value!r}")


def create_model(name: str, *, num_classes: int | None = None, in_channels: int | None = None,
                 **overrides) -> nn.Module:
    """Build a registered network. `num_classes`/`in_channels` default to the model's own
    (1000 classes of RGB for the ImageNet nets; 10 for alexnet_d2l and cifar_convnet, which also
    has 1 input channel for alexnet_d2l). Unknown names or options raise a ValueError listing
    what is valid."""
    info = model_info(name)
    opts = info.options
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    if in_channels is not None:
        overrides["in_channels"] = in_channels
    unknown = sorted(set(overrides) - set(opts))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; valid options: "
                         + ", ".join(f"{k}={v!r}" for k, v in opts.items()))
    for key, value in overrides.items():
        _check_value(name, key, value)
    init = overrides.pop("init", info.default_init)
    seed = overrides.pop("seed", None)
    # a seeded build draws from its own stream and leaves the global RNG as it was
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = info.factory(**overrides)
        model.name = name
        init_weights(model, init)
    return model
