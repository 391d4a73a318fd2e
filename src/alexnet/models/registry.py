"""A timm-style registry: `create_model(name, **overrides)` and `list_models()`."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import BadInput
from .base import LIMITS, ConvNet
from .init import INITS, init_weights


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    factory: Callable[..., nn.Module]
    default_init: str
    recipe: str = "paper"  # the training preset a bare `--model NAME` gets (timm's pretrained_cfg idea)
    weights: str | None = None  # the name (in `alexnet weights`) that pretrained=True loads

    @property
    def options(self) -> dict[str, object]:
        """The overrides this model accepts, with their defaults."""
        sig = inspect.signature(self.factory)
        opts = {k: p.default for k, p in sig.parameters.items()}
        opts.update(init=self.default_init, seed=None)
        return opts


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    description: str, *, default_init: str = "kaiming", recipe: str = "paper", weights: str | None = None
):
    """Decorator for a factory `fn(num_classes, in_channels, **options) -> ConvNet`. `recipe`
    names the training preset whose settings the model gets when no preset is given; `weights`
    the published weights that `pretrained=True` loads."""

    def wrap(fn):
        _REGISTRY[fn.__name__] = ModelInfo(fn.__name__, description, fn, default_init, recipe, weights)
        return fn

    return wrap


def list_models(filter: str | list[str] = "", pretrained: bool = False) -> list[str]:
    """Registered names matching a shell pattern (`"alex*"`, or a list of patterns: any of
    them); `pretrained=True` keeps those with published weights."""
    patterns = [filter] if isinstance(filter, str) else list(filter)
    return sorted(
        n
        for n, info in _REGISTRY.items()
        if (not any(patterns) or any(fnmatch.fnmatchcase(n, p) for p in patterns if p))
        and (info.weights or not pretrained)
    )


def model_table() -> str:
    """One paragraph per model: name, options with defaults, default weights, description (for
    docstrings and `help()`)."""
    rows = []
    for name in list_models():
        info = _REGISTRY[name]
        opts = ", ".join(f"{k}={v!r}" for k, v in info.options.items())
        weights = f"pretrained=True loads {info.weights!r}" if info.weights else "no published weights"
        rows.append(f"    {name}({opts})\n        {info.description}; {weights}.")
    return "\n".join(rows)


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _REGISTRY[name]


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


def create_model(
    name: str, *, num_classes: int | None = None, in_channels: int | None = None, **overrides
) -> ConvNet:
    """Build a registered network (alexnet.create_model adds pretrained weights, timm's spelling).
    `num_classes`/`in_channels` default to the model's own
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
        raise ValueError(
            f"{name}: unknown option(s) {unknown}; valid options: "
            + ", ".join(f"{k}={v!r}" for k, v in opts.items())
        )
    for key, value in overrides.items():
        _check_value(name, key, value)
    init = overrides.pop("init", info.default_init)
    seed = overrides.pop("seed", None)
    # a seeded build draws from its own stream and leaves the global RNG as it was
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = info.factory(**overrides)
        model.name, model.init_scheme = name, init
        # the options it was built with, for the card that save_pretrained writes
        model.model_kw = {k: v for k, v in overrides.items() if k not in ("num_classes", "in_channels")}
        init_weights(model, init)
    return model
