"""Per-layer table: output shape, parameters and multiply-accumulates (MACs).

MACs count the multiplications of convolutions (C_in/groups * k_h * k_w per output value) and
fully connected layers (in_features per output value), the convention of the paper's era and of
most FLOP counters; biases, ReLU, LRN and pooling are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..nn import LocallyConnected2d


@dataclass
class LayerRow:
    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    macs: int


def layer_macs(module: nn.Module, out: torch.Tensor) -> int:
    per_sample = out[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    if isinstance(module, LocallyConnected2d):  # a convolution's count, with unshared filters
        return per_sample * module.weight.shape[1]
    return 0


@torch.no_grad()
def summarize(model: nn.Module, input_size: int | None = None) -> list[LayerRow]:
    """One row per leaf module, in execution order, for one input image."""
    size = input_size or model.input_size
    rows: list[LayerRow] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module, _inp, out):
        rows.append(
            LayerRow(
                names[module],
                type(module).__name__,
                tuple(out.shape[1:]),
                sum(p.numel() for p in module.parameters(recurse=False)),
                layer_macs(module, out),
            )
        )

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device  # a model on the meta device: shapes only
        model(torch.zeros(1, model.in_channels, size, size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def format_summary(rows: list[LayerRow], title: str = "") -> str:
    head = f"{'layer':<22}{'type':<20}{'output':>18}{'params':>14}{'MACs':>16}"
    lines = [title, head, "-" * len(head)] if title else [head, "-" * len(head)]
    for r in rows:
        shape = "x".join(map(str, r.shape))
        lines.append(f"{r.name:<22}{r.kind:<20}{shape:>18}{r.params:>14,}{r.macs:>16,}")
    lines.append("-" * len(head))
    lines.append(f"{'total':<42}{'':>18}{sum(r.params for r in rows):>14,}{sum(r.macs for r in rows):>16,}")
    return "\n".join(lines)
