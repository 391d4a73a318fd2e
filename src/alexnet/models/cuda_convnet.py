"""The paper's own CIFAR-10 net (§3.3, footnote 3): "a four-layer CNN achieved a 13% test error
rate without normalization and 11% with normalization", the net that cuda-convnet's
example-layers/layers-conv-local-11pct.cfg specifies (layers-conv-local-13pct.cfg is the same
file without the two rnorm layers).

    24x24x3 -> conv1 64@5x5 pad 2 -> ReLU -> rnorm1 -> max-pool 3/2       -> 12x12x64
            -> conv2 64@5x5 pad 2 -> ReLU -> rnorm2 -> max-pool 3/2       -> 6x6x64
            -> local3 32@3x3 pad 1 (unshared) -> ReLU
            -> local4 32@3x3 pad 1 (unshared) -> ReLU                     -> 6x6x32
            -> fc 10 (cuda-convnet's "fc10") -> softmax

Read from cuda-convnet (code.google.com/p/cuda-convnet; the dnouri/cuda-convnet mirror):
- rnorm (crossMap=1, size=5, scale=0.001, pow=0.75): layer.py's NormLayerParser divides scale by
  size for cross-map norms, and conv_util.cu's kFCNorm computes x / (1 + scale/size * sum x_j^2)^pow
  over the maps i - size/2 .. i - size/2 + size - 1, cut at 0 and C - 1: Caffe's LRN convention
  (alpha/n, k=1, centred window), which nn/lrn.py already serves.
- pool (start=0, outputsX=0): outputsX = ceil((side - start - sizeX) / stride) + 1, the last
  window clipped at the edge: torch's ceil_mode=True with no padding (24 -> 12 -> 6).
- initW: weights ~ N(0, initW^2), initW read as a standard deviation (layer.py: initW * randn);
  biases initB = 0. conv biases are shared per filter (sharedBiases=1), local biases are not.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..nn import LocallyConnected2d, LocalResponseNorm
from .base import ConvNet
from .registry import register_model

# layers-conv-local-11pct.cfg's initW, by this package's layer names (fc5 is the cfg's fc10)
INIT_STD = {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc5": 0.01}
# the cfg's rnorm layers in nn/lrn.py's caffe convention: scale 0.001 over size 5, k = 1
RNORM = dict(size=5, alpha=0.001, beta=0.75, k=1.0, convention="caffe")


class CudaConvnetLocal(ConvNet):
    """cuda-convnet's conv-local net. rnorm=True is the 11 % net, False the 13 % net.
    activation='tanh' (Fig. 1), pool_size=2 (§3.4's non-overlapping pooling, same output sizes)
    and dropout before the output layer (§4.2) are this package's ablations, not in the cfg."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        rnorm: bool = True,
        activation: str = "relu",
        pool_size: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__(input_size=24, in_channels=in_channels, num_classes=num_classes)
        acts = {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        if pool_size not in (2, 3):
            raise ValueError(
                f"pool_size must be 3 (overlapping, §3.4) or 2 (non-overlapping), got {pool_size!r}"
            )
        self.init_std = dict(INIT_STD)  # read by init="cuda-convnet" (models/init.py)

        def conv_block(i: int, cin: int) -> list[tuple[str, nn.Module]]:
            norm = [(f"rnorm{i}", LocalResponseNorm(**RNORM))] if rnorm else []
            return [
                (f"conv{i}", nn.Conv2d(cin, 64, 5, padding=2)),
                (f"act{i}", acts[activation]()),
                *norm,
                (f"pool{i}", nn.MaxPool2d(pool_size, 2, ceil_mode=True)),
            ]

        self.features = nn.Sequential(
            OrderedDict(
                [
                    *conv_block(1, in_channels),  # 24 -> 12
                    *conv_block(2, 64),  # 12 -> 6
                    ("local3", LocallyConnected2d(64, 32, 6, 3, padding=1)),
                    ("act3", acts[activation]()),
                    ("local4", LocallyConnected2d(32, 32, 6, 3, padding=1)),
                    ("act4", acts[activation]()),
                ]
            )
        )
        head = [("drop5", nn.Dropout(dropout))] if dropout else []
        self.classifier = nn.Sequential(OrderedDict([*head, ("fc5", nn.Linear(32 * 6 * 6, num_classes))]))
        self.finish()


_DOC = (
    "cuda-convnet's conv-local CIFAR-10 net (footnote 3, layers-conv-local-{}pct.cfg): conv 64@5x5, "
    "{}pool, conv 64@5x5, {}pool, two locally connected 32@3x3, fc; 24x24 crops; "
    "activation='relu'|'tanh', pool_size=3|2, dropout"
)


@register_model(
    _DOC.format(11, "rnorm, ", "rnorm, ") + "; §3.3's 11 % net",
    default_init="cuda-convnet",
    recipe="cuda-convnet",
)
def cifar_local_11pct(
    num_classes: int = 10,
    in_channels: int = 3,
    activation: str = "relu",
    pool_size: int = 3,
    dropout: float = 0.0,
):
    return CudaConvnetLocal(num_classes, in_channels, True, activation, pool_size, dropout)


@register_model(
    _DOC.format(13, "", "") + "; §3.3's 13 % net (no normalisation)",
    default_init="cuda-convnet",
    recipe="cuda-convnet",
)
def cifar_local_13pct(
    num_classes: int = 10,
    in_channels: int = 3,
    activation: str = "relu",
    pool_size: int = 3,
    dropout: float = 0.0,
):
    return CudaConvnetLocal(num_classes, in_channels, False, activation, pool_size, dropout)
