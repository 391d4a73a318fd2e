"""Fine-tuning (transfer learning): start from pretrained weights, give the network a new output
layer sized to the new classes, train only the chosen layers with per-layer learning-rate
multipliers. Layers are named as in the paper (conv1..conv5, fc6..fc8) for every model."""

from __future__ import annotations

import torch
from torch import nn

from ..data import Pipeline
from ..interop.pretrained import load_pretrained
from ..models.init import named_weight_layers
from .config import TrainConfig


def parse_layers(model: nn.Module, spec: str | None) -> set[str]:
    """ "fc6,fc7,fc8" -> those names; "all" (or None) -> every layer."""
    names = named_weight_layers(model)
    if spec in (None, "all"):
        return set(names)
    chosen = {s.strip() for s in spec.split(",") if s.strip()}
    unknown = sorted(chosen - set(names))
    if unknown:
        raise ValueError(f"--train-layers: unknown layer(s) {unknown}; this model has {', '.join(names)}")
    return chosen


def pretrained_start(cfg: TrainConfig, num_classes: int, seed: int, channels: int = 3):
    """(model with a fresh output layer and frozen layers, the pretrained card)."""
    model, card = load_pretrained(cfg.init_from)
    card.check_channels(channels, cfg.data, cfg.init_from)
    head_name = list(named_weight_layers(model))[-1]
    old = named_weight_layers(model)[head_name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, num_classes)  # the new classes' output layer
        nn.init.normal_(new.weight, 0.0, 0.01)
        nn.init.zeros_(new.bias)
    model.classifier[-1] = new
    model.num_classes = num_classes
    trained = parse_layers(model, cfg.train_layers)
    for name, layer in named_weight_layers(model).items():
        for p in layer.parameters():
            p.requires_grad_(name in trained or name == head_name)
    model.train()
    return model, card


def finetune_pipeline(cfg: TrainConfig, card) -> Pipeline:
    """The pretrained weights' own preprocessing, with this run's augmentation."""
    base = card.pipeline()
    return Pipeline(
        base.normalize,
        crop=card.input_size,
        flip=cfg.flip,
        pca_std=cfg.pca_std,
        random_resized=cfg.random_resized_crop,
        channels_last=cfg.channels_last,
    )


def layer_of(model: nn.Module) -> dict[int, str]:
    """id(parameter) -> paper-style layer name, for learning-rate multipliers."""
    return {id(p): name for name, layer in named_weight_layers(model).items() for p in layer.parameters()}
