"""Descendants and relatives: a BatchNorm AlexNet, d2l's Fashion-MNIST AlexNet, and the
four-layer CIFAR-10 net of paper Fig. 1 (cuda-convnet's layers-18pct)."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..nn import LocalResponseNorm
from .base import ConvNet
from .registry import register_model


class AlexNetBN(ConvNet):
    """The common Keras rewrite: BatchNorm after each ReLU in place of LRN, 'same' padding
    (TensorFlow's rule: conv1 at 227 pads 4 on each side, giving 57x57), no towers, and
    dropout 0.25 after each pooled block and each hidden fc layer."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.25):
        super().__init__(input_size=227, in_channels=in_channels, num_classes=num_classes)

        def conv(i, cin, cout, k, stride=1, pad=None):
            pad = k // 2 if pad is None else pad
            return [(f"conv{i}", nn.Conv2d(cin, cout, k, stride=stride, padding=pad)),
                    (f"relu{i}", nn.ReLU(inplace=True)), (f"bn{i}", nn.BatchNorm2d(cout))]

        def pool(i):
            return [(f"pool{i}", nn.MaxPool2d(3, 2)), (f"drop{i}", nn.Dropout(dropout))]

        self.features = nn.Sequential(OrderedDict([
            *conv(1, in_channels, 96, 11, stride=4, pad=4), *pool(1),   # 227 -> 57 -> 28
            *conv(2, 96, 256, 5), *pool(2),                             # 28 -> 13
            *conv(3, 256, 384, 3), *conv(4, 384, 384, 3), *conv(5, 384, 256, 3),
            *pool(5),                                                   # -> 6x6x256
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", nn.ReLU(inplace=True)),
            ("bn6", nn.BatchNorm1d(4096)), ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU(inplace=True)),
            ("bn7", nn.BatchNorm1d(4096)), ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(4096, num_classes)),
        ]))
        self.finish()


@register_model("BatchNorm AlexNet (Keras style): BN after each ReLU instead of LRN, 'same' padding, "
                "dropout 0.25")
def alexnet_bn(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.25):
    return AlexNetBN(num_classes, in_channels, dropout)


class AlexNetD2L(ConvNet):
    """Dive into Deep Learning §8.1: Fashion-MNIST resized to 224, one tower, no LRN,
    conv1 padded by 1 so the trunk ends at 5x5x256 = 6400."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5):
        super().__init__(input_size=224, in_channels=in_channels, num_classes=num_classes)
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 96, 11, stride=4, padding=1)),  # 224 -> 54
            ("relu1", nn.ReLU(inplace=True)), ("pool1", nn.MaxPool2d(3, 2)),  # -> 26
            ("conv2", nn.Conv2d(96, 256, 5, padding=2)),
            ("relu2", nn.ReLU(inplace=True)), ("pool2", nn.MaxPool2d(3, 2)),  # -> 12
            ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU(inplace=True)),
            ("conv4", nn.Conv2d(384, 384, 3, padding=1)), ("relu4", nn.ReLU(inplace=True)),
            ("conv5", nn.Conv2d(384, 256, 3, padding=1)), ("relu5", nn.ReLU(inplace=True)),
            ("pool5", nn.MaxPool2d(3, 2)),                                     # -> 5
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc6", nn.Linear(6400, 4096)), ("relu6", nn.ReLU(inplace=True)), ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU(inplace=True)), ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(4096, num_classes)),
        ]))
        self.finish()


@register_model("d2l's Fashion-MNIST AlexNet: 1x224x224 input, conv1 pad 1, no groups or LRN, "
                "fc6 from 6400, 10 classes", recipe="d2l")
def alexnet_d2l(num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5):
    return AlexNetD2L(num_classes, in_channels, dropout)


class CifarConvNet(ConvNet):
    """Paper Fig. 1's "four-layer convolutional neural network" on CIFAR-10: cuda-convnet's
    layers-18pct config. Pools use ceil mode, as cuda-convnet's do (32 -> 16 -> 8 -> 4).
    LRN (size 3, alpha 5e-5, beta 0.75, alpha/n and k=1 as cuda-convnet's cmrnorm) follows
    pool1 and conv2, where layers-18pct puts rnorm1/rnorm2; §3.3 reports it lowers CIFAR-10
    error from 13 % to 11 % on a related net."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, activation: str = "relu",
                 lrn: bool = True, pool_size: int = 3, dropout: float = 0.0):
        super().__init__(input_size=32, in_channels=in_channels, num_classes=num_classes)
        acts = {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        if pool_size not in (2, 3):
            raise ValueError(f"pool_size must be 3 (overlapping, §3.4) or 2 (non-overlapping), got {pool_size!r}")
        z = pool_size  # stride stays 2: z=3 overlaps neighbouring windows, z=2 does not

        def norm(i):
            if not lrn:
                return []
            return [(f"norm{i}", LocalResponseNorm(3, 5e-5, 0.75, k=1.0, convention="caffe"))]

        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 32, 5, padding=2)), ("act1", acts[activation]()),
            ("pool1", nn.MaxPool2d(z, 2, ceil_mode=True)), *norm(1),                      # -> 16
            ("conv2", nn.Conv2d(32, 32, 5, padding=2)), ("act2", acts[activation]()), *norm(2),
            ("pool2", nn.AvgPool2d(z, 2, ceil_mode=True)),                                # -> 8
            ("conv3", nn.Conv2d(32, 64, 5, padding=2)), ("act3", acts[activation]()),
            ("pool3", nn.AvgPool2d(z, 2, ceil_mode=True)),                                # -> 4
        ]))
        head = [("drop4", nn.Dropout(dropout))] if dropout else []
        self.classifier = nn.Sequential(OrderedDict([*head, ("fc4", nn.Linear(64 * 4 * 4, num_classes))]))
        self.finish()


@register_model("Krizhevsky's CIFAR-10 net (cuda-convnet layers-18pct, paper Fig. 1): "
                "3 conv + 1 fc, activation='relu'|'tanh', lrn=True|False, pool_size=3|2, dropout",
                recipe="cifar10-quick")
def cifar_convnet(num_classes: int = 10, in_channels: int = 3, activation: str = "relu",
                  lrn: bool = True, pool_size: int = 3, dropout: float = 0.0):
    return CifarConvNet(num_classes, in_channels, activation, lrn, pool_size, dropout)
