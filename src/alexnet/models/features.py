"""`create_model(..., features_only=True)`: the conv trunk returning the maps of each stage, as
timm's FeatureListNet does (a detection or segmentation backbone, or the paper's Fig. 3 kernels'
responses). A stage ends where the resolution halves: its map is the last before the pooling
(conv1's ReLU/LRN output at stride 4, conv2's at 8, conv5's at 16, pool5 at 32)."""

from __future__ import annotations

import torch
from torch import nn

from .base import ConvNet, FeatureInfo, NotScriptable, check_input, feature_taps, spatial_out


class FeatureNet(nn.Module):
    """forward(x) -> [maps of each stage in `out_indices`]. Holds the trunk under the same name as
    the classifier net (`features.*`), so state dicts of the two share their keys."""

    def __init__(self, model: ConvNet, out_indices: tuple[int, ...] | list[int] | None = None):
        super().__init__()
        taps = feature_taps(model.features, model.in_channels)
        n = len(taps)
        out_indices = tuple(range(n)) if out_indices is None else tuple(out_indices)
        bad = [i for i in out_indices if not isinstance(i, int) or isinstance(i, bool) or not -n <= i < n]
        if not out_indices or bad:
            raise ValueError(
                f"{model.name}: out_indices must be stage numbers 0..{n - 1} (or -{n}..-1), "
                f"got {out_indices!r}"
            )
        self.out_indices = tuple(sorted({i % n for i in out_indices}))
        chosen = [taps[i] for i in self.out_indices]
        self.feature_info = FeatureInfo({k: v for k, v in t.items() if k != "index"} for t in chosen)
        self._at = [t["index"] for t in chosen]
        last = self._at[-1]
        self.features = model.features[: last + 1]  # stages after the last one asked for are not kept
        self.name, self.in_channels, self.input_size = model.name, model.in_channels, model.input_size
        # any side the kept layers fit (no fc6 to fit here)
        self._lo = next(s for s in range(1, model.input_size + 1) if spatial_out(self.features, s) >= 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = check_input(x, self.name, self.in_channels, self.input_size, self._lo, None)
        out = []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in self._at:
                out.append(x)
        return out

    def __prepare_scriptable__(self):
        raise NotScriptable(self.name)
