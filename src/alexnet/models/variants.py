"""Descendants and relatives: a BatchNorm AlexNet, d2l's Fashion-MNIST AlexNet, and a four-layer
CIFAR-10 net standing in for paper Fig. 1's (cuda-convnet's layers-18pct)."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import LocalResponseNorm
from .base import ConvNet
from .registry import register_model


class TFSameConv2d(nn.Conv2d):
    """A strided convolution padded the way TensorFlow/Keras 'same' pads: the output side is
    ceil(n / stride), the padding that needs is max((out - 1) * stride + k - n, 0), and an odd
    total puts the extra pixel at the bottom/right. At 227 conv1 pads 4 + 4 (`padding` holds that
    for summaries); at 224 it pads 3 + 4, which no symmetric torch padding reproduces."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, static_pad: int):
        super().__init__(cin, cout, k, stride=stride, padding=static_pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(same_pad(x, self.kernel_size, self.stride), self.weight, self.bias, self.stride)


def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


@torch.fx.wrap  # one node of a symbolic trace: the padding depends on the input's sides
def same_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """x padded as TF 'same' pads it for this kernel and stride."""
    top, bottom = _same_pads(x.shape[-2], kernel[0], stride[0])
    left, right = _same_pads(x.shape[-1], kernel[1], stride[1])
    return F.pad(x, (left, right, top, bottom))


class AlexNetBN(ConvNet):
    """The BatchNorm AlexNet of the Keras tutorials, layer for layer (a Sequential, channels last):
    conv1 96@11x11/4 'same' -> ReLU -> BN -> maxpool 3/2 -> dropout; conv2 256@5x5 'same' -> ReLU
    -> BN -> pool -> dropout; conv3, conv4 384@3x3 'same' -> ReLU -> BN; conv5 256@3x3 'same' ->
    pool -> dropout (no ReLU, no BN: as published); fc6, fc7 4096 -> ReLU -> BN -> dropout; fc8.
    Keras defaults throughout: BN epsilon 1e-3 and momentum 0.99 (torch's 0.01), Glorot-uniform
    kernels, zero biases; dropout 0.25. Returns logits (the softmax belongs to the loss).
    conv5_relu=True adds ReLU + BN after conv5 (this package's earlier variant)."""

    def __init__(
        self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.25, conv5_relu: bool = False
    ):
        super().__init__(input_size=227, in_channels=in_channels, num_classes=num_classes)

        def bn(i, c, d=2):
            return (f"bn{i}", (nn.BatchNorm2d if d == 2 else nn.BatchNorm1d)(c, eps=1e-3, momentum=0.01))

        def conv(i, cin, cout, k, act=True):
            layer = (
                TFSameConv2d(cin, cout, k, 4, static_pad=4)
                if i == 1  # 227 -> ceil(227/4) = 57
                else nn.Conv2d(cin, cout, k, padding=k // 2)
            )  # stride 1, odd k: 'same' is symmetric
            return [(f"conv{i}", layer)] + ([(f"relu{i}", nn.ReLU(inplace=True)), bn(i, cout)] if act else [])

        def pool(i):  # Keras MaxPooling2D(3, 2): padding 'valid', i.e. floor
            return [(f"pool{i}", nn.MaxPool2d(3, 2)), (f"drop{i}", nn.Dropout(dropout))]

        self.features = nn.Sequential(
            OrderedDict(
                [
                    *conv(1, in_channels, 96, 11),
                    *pool(1),  # 227 -> 57 -> 28
                    *conv(2, 96, 256, 5),
                    *pool(2),  # 28 -> 13
                    *conv(3, 256, 384, 3),
                    *conv(4, 384, 384, 3),
                    *conv(5, 384, 256, 3, act=conv5_relu),
                    *pool(5),  # -> 6x6x256
                ]
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc6", nn.Linear(256 * 6 * 6, 4096)),
                    ("relu6", nn.ReLU(inplace=True)),
                    bn(6, 4096, 1),
                    ("drop6", nn.Dropout(dropout)),
                    ("fc7", nn.Linear(4096, 4096)),
                    ("relu7", nn.ReLU(inplace=True)),
                    bn(7, 4096, 1),
                    ("drop7", nn.Dropout(dropout)),
                    ("fc8", nn.Linear(4096, num_classes)),
                ]
            )
        )
        self.finish()
        # the generic size check reads conv1's static padding; 'same' depends on the input side
        ok = [n for n in range(1, 4 * self.input_size) if self._side(n) == self._feature_side]
        self._valid_sizes = (ok[0], ok[-1])

    @staticmethod
    def _side(n: int) -> int:
        n = -(-n // 4)  # conv1 'same', stride 4
        for _ in range(3):  # pool1, pool2, pool5 ('same' convs keep n)
            n = (n - 3) // 2 + 1 if n >= 3 else 0
        return n


@register_model(
    "BatchNorm AlexNet as the Keras tutorials publish it: BN after each ReLU instead of "
    "LRN, TF 'same' padding, conv5 without ReLU/BN (conv5_relu=True adds them), dropout "
    "0.25, Keras BN eps/momentum, Glorot init",
    default_init="glorot",
    recipe="keras-bn",
)
def alexnet_bn(
    num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.25, conv5_relu: bool = False
):
    return AlexNetBN(num_classes, in_channels, dropout, conv5_relu)


class AlexNetD2L(ConvNet):
    """Dive into Deep Learning §8.1: Fashion-MNIST resized to 224, one tower, no LRN,
    conv1 padded by 1 so the trunk ends at 5x5x256 = 6400."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5):
        super().__init__(input_size=224, in_channels=in_channels, num_classes=num_classes)
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 96, 11, stride=4, padding=1)),  # 224 -> 54
                    ("relu1", nn.ReLU(inplace=True)),
                    ("pool1", nn.MaxPool2d(3, 2)),  # -> 26
                    ("conv2", nn.Conv2d(96, 256, 5, padding=2)),
                    ("relu2", nn.ReLU(inplace=True)),
                    ("pool2", nn.MaxPool2d(3, 2)),  # -> 12
                    ("conv3", nn.Conv2d(256, 384, 3, padding=1)),
                    ("relu3", nn.ReLU(inplace=True)),
                    ("conv4", nn.Conv2d(384, 384, 3, padding=1)),
                    ("relu4", nn.ReLU(inplace=True)),
                    ("conv5", nn.Conv2d(384, 256, 3, padding=1)),
                    ("relu5", nn.ReLU(inplace=True)),
                    ("pool5", nn.MaxPool2d(3, 2)),  # -> 5
                ]
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc6", nn.Linear(6400, 4096)),
                    ("relu6", nn.ReLU(inplace=True)),
                    ("drop6", nn.Dropout(dropout)),
                    ("fc7", nn.Linear(4096, 4096)),
                    ("relu7", nn.ReLU(inplace=True)),
                    ("drop7", nn.Dropout(dropout)),
                    ("fc8", nn.Linear(4096, num_classes)),
                ]
            )
        )
        self.finish()


@register_model(
    "d2l's Fashion-MNIST AlexNet: 1x224x224 input, conv1 pad 1, no groups or LRN, fc6 from 6400, 10 classes",
    recipe="d2l",
)
def alexnet_d2l(num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5):
    return AlexNetD2L(num_classes, in_channels, dropout)


class CeilAvgPool2d(nn.AvgPool2d):
    """AvgPool2d(kernel, stride, ceil_mode=True), pooled sizes rounded up as cuda-convnet's are.
    Under torch.compile the average is written as window sums over the number of image pixels in
    each window: inductor's backward divides the overhanging last windows by the whole window
    (pytorch/pytorch#198119), silently wrong gradients on the last row and column. Eager runs the
    plain op; both forms compute the same numbers."""

    def __init__(self, kernel_size: int, stride: int):
        super().__init__(kernel_size, stride, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            return super().forward(x)
        k, s = self.kernel_size, self.stride
        sums = F.avg_pool2d(x, k, s, 0, True, True, divisor_override=1)
        return sums / F.avg_pool2d(torch.ones_like(x[:1, :1]), k, s, 0, True, True, divisor_override=1)


class CifarConvNet(ConvNet):
    """A stand-in for paper Fig. 1's "four-layer convolutional neural network" on CIFAR-10, which
    the paper does not specify: cuda-convnet's layers-18pct config. Pools use ceil mode, as
    cuda-convnet's do (32 -> 16 -> 8 -> 4). LRN (size 3, alpha 5e-5, beta 0.75, alpha/n and k=1 as
    cuda-convnet's cmrnorm) follows pool1 and conv2, where layers-18pct puts rnorm1/rnorm2; on
    0-1 pixels it is nearly the identity. §3.3's own CIFAR-10 nets are models/cuda_convnet.py."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        activation: str = "relu",
        lrn: bool = True,
        pool_size: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__(input_size=32, in_channels=in_channels, num_classes=num_classes)
        acts = {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        if pool_size not in (2, 3):
            raise ValueError(
                f"pool_size must be 3 (overlapping, §3.4) or 2 (non-overlapping), got {pool_size!r}"
            )
        z = pool_size  # stride stays 2: z=3 overlaps neighbouring windows, z=2 does not

        def norm(i):
            if not lrn:
                return []
            return [(f"norm{i}", LocalResponseNorm(3, 5e-5, 0.75, k=1.0, convention="caffe"))]

        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 32, 5, padding=2)),
                    ("act1", acts[activation]()),
                    ("pool1", nn.MaxPool2d(z, 2, ceil_mode=True)),
                    *norm(1),  # -> 16
                    ("conv2", nn.Conv2d(32, 32, 5, padding=2)),
                    ("act2", acts[activation]()),
                    *norm(2),
                    ("pool2", CeilAvgPool2d(z, 2)),  # -> 8
                    ("conv3", nn.Conv2d(32, 64, 5, padding=2)),
                    ("act3", acts[activation]()),
                    ("pool3", CeilAvgPool2d(z, 2)),  # -> 4
                ]
            )
        )
        head = [("drop4", nn.Dropout(dropout))] if dropout else []
        self.classifier = nn.Sequential(OrderedDict([*head, ("fc4", nn.Linear(64 * 4 * 4, num_classes))]))
        self.finish()


@register_model(
    "Krizhevsky's CIFAR-10 net (cuda-convnet layers-18pct; a stand-in for Fig. 1's): "
    "3 conv + 1 fc, activation='relu'|'tanh', lrn=True|False, pool_size=3|2, dropout",
    recipe="cifar10-quick",
)
def cifar_convnet(
    num_classes: int = 10,
    in_channels: int = 3,
    activation: str = "relu",
    lrn: bool = True,
    pool_size: int = 3,
    dropout: float = 0.0,
):
    return CifarConvNet(num_classes, in_channels, activation, lrn, pool_size, dropout)
