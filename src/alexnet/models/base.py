"""What every network of the zoo shares: features -> (avgpool) -> flatten -> classifier.

The split follows timm: `forward_features` is the conv trunk up to and including its last
pooling, `forward_head` the fully connected part, and `embed` reads the post-ReLU fc6/fc7
activations that paper §6.1 uses as the image's 4096-d description.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..nn import LocallyConnected2d


def _spatial_out(layers: nn.Sequential, size: int) -> int:
    """Side length after the trunk for a square `size` input, 0 if some layer would not fit."""
    for m in layers:
        if isinstance(m, LocallyConnected2d):  # its filters are tied to one input side
            if size != m.in_size:
                return 0
            size = m.out_size
        elif isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = (m.kernel_size, m.stride, m.padding)
            k, s, p = (v if isinstance(v, int) else v[0] for v in (k, s, p))
            d = m.dilation if isinstance(m, (nn.Conv2d, nn.MaxPool2d)) else 1
            d = d if isinstance(d, int) else d[0]
            span = size + 2 * p - d * (k - 1) - 1
            if span < 0:
                return 0
            if getattr(m, "ceil_mode", False):
                out = math.ceil(span / s) + 1
                if (out - 1) * s >= size + p:  # the last window must start inside the input
                    out -= 1
            else:
                out = span // s + 1
            size = out
    return size


class ConvNet(nn.Module):
    """Base class. Subclass constructors build `features` and `classifier` (an nn.Sequential
    whose last module is the output Linear) and call `finish()`."""

    name = "convnet"

    def __init__(self, *, input_size: int, in_channels: int, num_classes: int):
        super().__init__()
        self.input_size, self.in_channels, self.num_classes = input_size, in_channels, num_classes
        self.avgpool: nn.Module | None = None

    def finish(self) -> None:
        self._feature_side = _spatial_out(self.features, self.input_size)
        if self._feature_side < 1:
            raise ValueError(f"{self.name}: input_size={self.input_size} is too small for the trunk")
        fixed = self.avgpool is None  # an adaptive pool accepts any size the trunk can take
        sides = [_spatial_out(self.features, s) for s in range(1, 4 * self.input_size + 1)]
        ok = [s + 1 for s, out in enumerate(sides) if (out == self._feature_side if fixed else out >= 1)]
        self._valid_sizes = (ok[0], ok[-1] if fixed else None)
        # where embed() reads: the ReLU right after the 1st (fc6) and 2nd (fc7) hidden Linear
        self._embed_at: dict[str, int] = {}
        linears = 0
        for i, m in enumerate(self.classifier):
            if isinstance(m, nn.Linear):
                linears += 1
            elif isinstance(m, nn.ReLU) and linears in (1, 2):
                self._embed_at.setdefault(f"fc{linears + 5}", i)

    # ---- input checks: a clear ValueError instead of a shape error from deep inside ----
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.name} expects input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        for side in x.shape[2:]:
            if not self.accepts(side):
                raise ValueError(f"{self.name} expects {self.input_size}x{self.input_size} input "
                                 f"(sides {self.sides()} work), got {tuple(x.shape[2:])}")

    def accepts(self, side: int) -> bool:
        """Whether square inputs of this side work (the flattened size must fit fc6)."""
        lo, hi = self._valid_sizes
        return lo <= side and (hi is None or side <= hi)

    def sides(self) -> str:
        """The input sides that work, as text: "227..258", or ">= 224" (adaptive pooling)."""
        lo, hi = self._valid_sizes
        return f"{lo}..{hi}" if hi is not None else f">= {lo}"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self.features(x)

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        if self.avgpool is not None:
            x = self.avgpool(x)
        return torch.flatten(x, 1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self._flatten(x)
        if pre_logits:
            for m in list(self.classifier)[:-1]:
                x = m(x)
            return x
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def embed(self, x: torch.Tensor, layer: str = "fc7") -> torch.Tensor:
        """Post-ReLU activations of "fc6" or "fc7" (paper §6.1: the 4096-d image vector)."""
        if layer not in self._embed_at:
            if not self._embed_at:
                raise ValueError(f"{self.name}.embed: this model has no hidden fc layers (asked for "
                                 f"{layer!r}); "
                                 "take forward_features(x) (its last pooled maps) instead")
            raise ValueError(f"{self.name}.embed: layer must be one of {sorted(self._embed_at)}, got "
                             f"{layer!r}")
        x = self._flatten(self.forward_features(x))
        for m in list(self.classifier)[: self._embed_at[layer] + 1]:
            x = m(x)
        return x
