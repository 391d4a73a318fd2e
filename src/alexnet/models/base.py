"""What every network of the zoo shares: features -> (avgpool) -> flatten -> classifier.

The split follows timm: `forward_features` is the conv trunk up to and including its last
pooling, `forward_head` the fully connected part, and `embed` reads the post-ReLU fc6/fc7
activations that paper §6.1 uses as the image's 4096-d description. timm's head protocol
(`num_features`, `get_classifier`, `reset_classifier`) and `feature_info` work as there.

Nothing in `forward` loads, locks or branches on tensor values, so that torch.compile(fullgraph=True),
torch.export and torch.fx.symbolic_trace all see one graph.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..nn import LocallyConnected2d
from .init import init_layer, named_weight_layers

# Sizes from a flag, a card or a file are checked before anything is built. fc8 alone holds
# 4096 x num_classes floats: 150,000 classes are 2.5 GB, 10^7 are 164 GB. ImageNet-21k's 21,841
# classes are the most AlexNet is trained on; 100,000 leaves room (fc8 1.6 GB, the whole net
# 1.9 GB in fp32, plus as much again for gradients and momentum). Input sides follow the largest
# stored size a config accepts (8192); 1024 input channels cover hyperspectral images (conv1:
# 12M weights). No model's other options change its size by more than a few percent.
LIMITS = {"num_classes": 100_000, "in_channels": 1024, "input_size": 8192}


def spatial_out(layers: nn.Sequential, size: int) -> int:
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


def side_ok(side: int, lo: int, hi: int | None) -> bool:
    return lo <= side and (hi is None or side <= hi)


def sides_text(lo: int, hi: int | None) -> str:
    return f"{lo}..{hi}" if hi is not None else f">= {lo}"


@torch.fx.wrap  # one node of a symbolic trace (it reads shapes), checked when the graph runs
def check_input(
    x: torch.Tensor, name: str, channels: int, size: int, lo: int, hi: int | None
) -> torch.Tensor:
    """x itself if it is (N, channels, S, S') with both sides in lo..hi (None: no upper bound)."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} expects input of shape (N, {channels}, H, W), got {tuple(x.shape)}")
    for side in x.shape[2:]:
        if not side_ok(side, lo, hi):
            raise ValueError(
                f"{name} expects {size}x{size} input (sides {sides_text(lo, hi)} work), "
                f"got {tuple(x.shape[2:])}"
            )
    return x


def _pair(v) -> int:
    return v if isinstance(v, int) else v[0]


def feature_taps(features: nn.Sequential, in_channels: int) -> list[dict]:
    """Where each stage of a conv trunk ends: the module before each downsampling pool, and the
    last module. (num_chs, reduction: the stride so far, module: its name, index in `features`)."""
    names = [n for n, _ in features.named_children()]
    taps, chs, reduction = [], in_channels, 1
    for i, m in enumerate(features):
        if isinstance(m, (nn.Conv2d, LocallyConnected2d)):
            chs, reduction = m.out_channels, reduction * _pair(m.stride)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) and _pair(m.stride or m.kernel_size) > 1:
            if i and (not taps or taps[-1]["index"] != i - 1):
                taps.append(
                    dict(num_chs=chs, reduction=reduction, module=f"features.{names[i - 1]}", index=i - 1)
                )
            reduction *= _pair(m.stride or m.kernel_size)
    taps.append(dict(num_chs=chs, reduction=reduction, module=f"features.{names[-1]}", index=len(names) - 1))
    return taps


class NotScriptable(RuntimeError):
    def __init__(self, name: str):
        super().__init__(
            f"{name}: torch.jit.script is not supported (TorchScript is deprecated upstream, "
            "and the LRN's kernels are custom ops); use torch.export.export(model, (x,)) (a "
            "dynamic batch: dynamic_shapes=({0: torch.export.Dim('batch')},)), torch.compile, "
            "or torch.jit.trace"
        )


class FeatureInfo(list):
    """A list of {num_chs, reduction, module} dicts with timm's accessors."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


class ConvNet(nn.Module):
    """Base class. Subclass constructors build `features` and `classifier` (an nn.Sequential
    whose last module is the output Linear) and call `finish()`."""

    name = "convnet"
    init_scheme = "kaiming"  # what reset_classifier initialises a new head with (create_model sets it)

    def __init__(self, *, input_size: int, in_channels: int, num_classes: int):
        super().__init__()
        self.input_size, self.in_channels, self.num_classes = input_size, in_channels, num_classes
        self.avgpool: nn.Module | None = None

    def finish(self) -> None:
        self._num_features = self.classifier[-1].in_features
        self._feature_side = spatial_out(self.features, self.input_size)
        if self._feature_side < 1:
            raise ValueError(f"{self.name}: input_size={self.input_size} is too small for the trunk")
        fixed = self.avgpool is None  # an adaptive pool accepts any size the trunk can take
        sides = [spatial_out(self.features, s) for s in range(1, 4 * self.input_size + 1)]
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
    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        return check_input(x, self.name, self.in_channels, self.input_size, *self._valid_sizes)

    def accepts(self, side: int) -> bool:
        """Whether square inputs of this side work (the flattened size must fit fc6)."""
        return side_ok(side, *self._valid_sizes)

    def sides(self) -> str:
        """The input sides that work, as text: "227..258", or ">= 224" (adaptive pooling)."""
        return sides_text(*self._valid_sizes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The conv trunk's output maps: (N, C, H, W) after the last pooling."""
        return self.features(self._check_input(x))

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        if self.avgpool is not None:
            x = self.avgpool(x)
        return torch.flatten(x, 1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """forward_features' maps -> logits; with pre_logits=True the `num_features` vector the
        classifier reads (fc7 after ReLU and dropout)."""
        x = self._flatten(x)
        if pre_logits:
            for m in list(self.classifier)[:-1]:
                x = m(x)
            return x
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def __prepare_scriptable__(self):
        # torch.jit.script calls this first: one clear line instead of a compiler error deep inside
        raise NotScriptable(self.name)

    # ---- timm's head protocol ----
    @property
    def num_features(self) -> int:
        """Width of the vector the classifier's last layer reads (4096 for fc8)."""
        return self._num_features

    def get_classifier(self) -> nn.Module:
        """The output layer (nn.Identity after reset_classifier(0))."""
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        """A new output layer for `num_classes` classes, initialised as the model's init scheme
        initialises it (paper §5: N(0, 0.01), bias 0); 0 removes it: the model then returns the
        `num_features`-wide features (fc7 after ReLU for the AlexNets)."""
        top = LIMITS["num_classes"]
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or not 0 <= num_classes <= top:
            raise ValueError(
                f"{self.name}.reset_classifier: num_classes must be an integer 0..{top:,}, "
                f"got {num_classes!r:.40}"
            )
        where = next(self.parameters())
        if num_classes:
            head = nn.Linear(self._num_features, num_classes, device=where.device, dtype=where.dtype)
            self.classifier[-1] = head
            init_layer(
                head, list(named_weight_layers(self))[-1], self.init_scheme, getattr(self, "init_std", None)
            )
        else:
            self.classifier[-1] = nn.Identity()
        self.num_classes = num_classes

    @property
    def feature_info(self) -> FeatureInfo:
        """timm's feature_info: one dict per stage (num_chs, reduction, module), the last map of
        each resolution: the layer before each downsampling pool, and the trunk's output."""
        return FeatureInfo(
            {k: v for k, v in t.items() if k != "index"}
            for t in feature_taps(self.features, self.in_channels)
        )

    def embed(self, x: torch.Tensor, layer: str = "fc7") -> torch.Tensor:
        """Post-ReLU activations of "fc6" or "fc7" (paper §6.1: the 4096-d image vector)."""
        if layer not in self._embed_at:
            if not self._embed_at:
                raise ValueError(
                    f"{self.name}.embed: this model has no hidden fc layers (asked for "
                    f"{layer!r}); "
                    "take forward_features(x) (its last pooled maps) instead"
                )
            raise ValueError(
                f"{self.name}.embed: layer must be one of {sorted(self._embed_at)}, got {layer!r}"
            )
        x = self._flatten(self.forward_features(x))
        for m in list(self.classifier)[: self._embed_at[layer] + 1]:
            x = m(x)
        return x
