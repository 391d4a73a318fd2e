"""Warnings at a run's first batch about a network that cannot learn: a loss far above what an
untrained output layer gives (ln of the number of classes), or a layer whose ReLUs are nearly all
dead. Both are what weights fed with the wrong preprocessing (0-255 pixels to a net trained on
0-1, BGR to RGB) or damaged weights look like, and both used to show only as a run that diverged
or never moved (fc6 with 3 of 4096 units active: the same probabilities for every image)."""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..models.init import named_weight_layers

DEAD = 0.9  # "most units dead": at least this share of a layer's units output 0 for every image


def loss_warning(loss: float, num_classes: int) -> str | None:
    """A new output layer (weights ~ N(0, 0.01)) gives a loss near ln(C); far above it is bad."""
    chance = math.log(num_classes)
    if math.isfinite(loss) and loss <= max(2 * chance, chance + 2):
        return None
    return (
        f"the first batch's loss is {loss:.3g}, far above ln({num_classes}) = {chance:.2f} of an "
        f"untrained output layer: the images may be preprocessed differently from what the weights "
        f"expect (their card's mean, scale and channel order), or the weights are damaged"
    )


@torch.no_grad()
def dead_units(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, tuple[int, int]], torch.Tensor]:
    """({layer: (dead units, units)}, logits): the layers whose ReLU output is 0 for every image
    of `x` in at least DEAD of their units (channels of a convolution), named as in the paper."""
    names = {id(m): n for n, m in named_weight_layers(model).items()}
    active: dict[str, torch.Tensor] = {}
    hooks, layer = [], None

    def hook(name):
        def record(_m, _inp, out):
            alive = (out > 0).transpose(0, 1).flatten(1).any(1)  # per unit (channel), over images and pixels
            active[name] = alive if name not in active else active[name] | alive

        return record

    for m in model.modules():
        layer = names.get(id(m), layer)
        if isinstance(m, nn.ReLU) and layer is not None:
            hooks.append(m.register_forward_hook(hook(layer)))
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return {
        name: (int((~a).sum()), a.numel())
        for name, a in active.items()
        if (~a).sum().item() >= DEAD * a.numel()
    }, logits


@torch.no_grad()
def warn_at_start(model: nn.Module, pipeline, batch, device, amp) -> None:
    """One warning per problem, from one forward pass of the first batch in eval mode (centre
    crops, no dropout): nothing random is drawn, so the run is the same with or without it."""
    was_training = model.training
    model.eval()
    try:
        x = pipeline.eval(batch.images.to(device))  # (in the model's memory layout)
        with amp:
            dead, logits = dead_units(model, x)
        loss = F.cross_entropy(logits.float(), batch.labels.to(logits.device)).item()
    finally:
        model.train(was_training)
    why = loss_warning(loss, logits.shape[1])
    if why:
        warnings.warn(why, stacklevel=2)
    for name, (n, total) in dead.items():
        warnings.warn(
            f"{name}: {n} of its {total} units output 0 for every image of the first batch "
            f"(dead ReLUs); the network will not learn through them: check the weights and "
            f"their preprocessing, or lower --lr",
            stacklevel=2,
        )
