"""Model parallelism as in the paper (§3.2, Fig. 2): the two towers of `alexnet` on two devices.

"The GPUs communicate only in certain layers": each device holds half of every layer's kernels
(and half of fc6/fc7's neurons). conv2, conv4 and conv5 read only their own tower's maps; conv3
and the fully connected layers read both, so only their inputs cross between devices. One more
small exchange keeps the function exactly that of the one-device network: an LRN window that
straddles the towers reads the n//2 neighbouring maps from the other device (a halo).
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.lrn import LocalResponseNorm, local_response_norm

CROSSING = ("conv3", "fc6", "fc7", "fc8")  # layers that read both towers


def _half(layer: nn.Module, t: int) -> nn.Module:
    """Tower t's half of a layer's output units, as an ungrouped layer of its own."""
    rows = slice(t * layer.weight.shape[0] // 2, (t + 1) * layer.weight.shape[0] // 2)
    w, b = layer.weight.detach()[rows].clone(), layer.bias.detach()[rows].clone()
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(w.shape[1], w.shape[0], layer.kernel_size, layer.stride, layer.padding)
    else:
        new = nn.Linear(w.shape[1], w.shape[0])
    new.weight.data.copy_(w)
    new.bias.data.copy_(b)
    return new


class TwoTowers(nn.Module):
    def __init__(self, model: nn.Module, devices: list[str | torch.device]):
        super().__init__()
        if len(devices) != 2:
            raise ValueError(f"--towers-on needs exactly two devices, got {devices}")
        convs = {n: m for n, m in model.features.named_children() if isinstance(m, nn.Conv2d)}
        if sorted(convs) != ["conv1", "conv2", "conv3", "conv4", "conv5"] or convs["conv2"].groups != 2:
            raise ValueError("model parallel towers need the two-tower alexnet (groups=2)")
        self.devices = [torch.device(d) for d in devices]
        self.name, self.num_classes = getattr(model, "name", "alexnet"), model.num_classes
        self.in_channels, self.input_size = model.in_channels, model.input_size
        self.order = [n for n, _ in model.features.named_children()] + [
            n for n, _ in model.classifier.named_children()
        ]
        layers = dict(model.features.named_children()) | dict(model.classifier.named_children())
        self.towers = nn.ModuleList()
        for t, dev in enumerate(self.devices):
            halves = {
                n: _half(m, t)
                for n, m in layers.items()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and n != "fc8"
            }
            self.towers.append(nn.ModuleDict(halves).to(dev))
        # what each step does: "split" for the halved layers, else the parameter-free module itself
        self.layers = {
            n: ("head" if n == "fc8" else "split") if isinstance(m, (nn.Conv2d, nn.Linear)) else m
            for n, m in layers.items()
        }
        self.fc8 = nn.Linear(model.classifier.fc8.in_features, model.num_classes).to(self.devices[0])
        self.fc8.load_state_dict(model.classifier.fc8.state_dict())

    def _lrn(self, xs: list[torch.Tensor], norm: LocalResponseNorm) -> list[torch.Tensor]:
        h, c = norm.size // 2, xs[0].shape[1]
        args = (norm.size, norm.alpha, norm.beta, norm.k, norm.convention)
        if h == 0:
            return [local_response_norm(x, *args) for x in xs]
        left = torch.cat([xs[0], xs[1][:, :h].to(xs[0].device)], 1)  # halo from tower 1
        right = torch.cat([xs[0][:, -h:].to(xs[1].device), xs[1]], 1)  # halo from tower 0
        return [local_response_norm(left, *args)[:, :c], local_response_norm(right, *args)[:, h:]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [x.to(d) for d in self.devices]  # both towers see the whole image
        for name in self.order:
            layer = self.layers[name]
            if layer == "head":  # fc8 on the first device
                return self.fc8(torch.cat([v.to(self.devices[0]) for v in xs], 1))
            if name.startswith("fc") and xs[0].dim() == 4:
                xs = [v.flatten(1) for v in xs]
            if name in CROSSING:  # both towers' maps go into each half
                xs = [torch.cat([v.to(d) for v in xs], 1) for d in self.devices]
            if layer == "split":
                xs = [tower[name](v) for tower, v in zip(self.towers, xs)]
            elif isinstance(layer, LocalResponseNorm):
                xs = self._lrn(xs, layer)
            else:  # ReLU, pooling, dropout: within each tower
                xs = [layer(v) for v in xs]
        raise AssertionError("fc8 was not reached")

    def _split_names(self):
        for name, layer in self.layers.items():
            if layer == "split":
                yield name, ("features" if name.startswith("conv") else "classifier")

    def merged_state_dict(self) -> dict[str, torch.Tensor]:
        """The one-device `alexnet` state dict (conv/fc halves concatenated back)."""
        out = {}
        for name, prefix in self._split_names():
            for p in ("weight", "bias"):
                out[f"{prefix}.{name}.{p}"] = torch.cat(
                    [getattr(t[name], p).detach().cpu() for t in self.towers], 0
                )
        out["classifier.fc8.weight"] = self.fc8.weight.detach().cpu()
        out["classifier.fc8.bias"] = self.fc8.bias.detach().cpu()
        return out

    @torch.no_grad()
    def load_merged_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a one-device `alexnet` state dict into the two towers."""
        for name, prefix in self._split_names():
            for p in ("weight", "bias"):
                for t, half in zip(self.towers, state[f"{prefix}.{name}.{p}"].chunk(2, 0)):
                    getattr(t[name], p).copy_(half)
        self.fc8.weight.copy_(state["classifier.fc8.weight"])
        self.fc8.bias.copy_(state["classifier.fc8.bias"])
