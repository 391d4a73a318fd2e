"""The 2012 network (paper §3, Fig. 2), its two Caffe descendants, and torchvision's.

Layer names follow the paper (conv1..conv5, fc6..fc8) so that checkpoints read like Fig. 2;
the torchvision net keeps torchvision's index names so its state_dicts load strictly.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..nn import LocalResponseNorm
from .base import ConvNet
from .registry import register_model

# §3.3: k=2, n=5, alpha=1e-4, beta=0.75 in the paper's convention; Caffe writes the same
# alpha=1e-4 but divides it by n and uses k=1 (bvlc_alexnet's norm layers).
LRN_SETTINGS = {
    "paper": dict(size=5, alpha=1e-4, beta=0.75, k=2.0, convention="paper"),
    "caffe": dict(size=5, alpha=1e-4, beta=0.75, k=1.0, convention="caffe"),
}


class AlexNet(ConvNet):
    """conv1 96@11x11/4 -> conv2 256@5x5 -> conv3 384 -> conv4 384 -> conv5 256 @3x3
    -> fc6 4096 -> fc7 4096 -> fc8.

    Input is 227x227, not the 224 the paper states: (224 - 11) / 4 + 1 is not an integer, while
    (227 - 11) / 4 + 1 = 55 gives exactly Fig. 2's 55x55x96 conv1 maps and a 6x6x256 = 9216
    input to fc6 (Caffe's bvlc_alexnet settles on 227 for the same reason).

    groups=2 is the paper's two GPUs (§3.2): conv2, conv4 and conv5 see only the kernel maps of
    their own tower; conv3 and the fully connected layers see both. groups=1 is the one-tower form.

    ceil_pool=True rounds pooled sizes up, as Caffe does (the two Caffe nets): identical at 227,
    but at e.g. 231 conv1's 56x56 pools to 28x28 in Caffe and to 27x27 with torch's floor.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        *,
        groups: int = 2,
        lrn: str = "paper",
        pool_before_norm: bool = False,
        dropout: float = 0.5,
        input_size: int = 227,
        ceil_pool: bool = False,
    ):
        super().__init__(input_size=input_size, in_channels=in_channels, num_classes=num_classes)
        if groups not in (1, 2):
            raise ValueError(f"groups must be 1 (one tower) or 2 (the paper's two GPUs), got {groups!r}")
        if lrn not in LRN_SETTINGS:
            raise ValueError(f"lrn must be one of {sorted(LRN_SETTINGS)}, got {lrn!r}")

        def norm_pool(i: int) -> list[tuple[str, nn.Module]]:
            # §3.3/§3.4: the paper (and bvlc_alexnet) normalise then pool; CaffeNet pools first.
            norm = (f"norm{i}", LocalResponseNorm(**LRN_SETTINGS[lrn]))
            pool = (f"pool{i}", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=ceil_pool))  # §3.4: z=3, s=2
            return [pool, norm] if pool_before_norm else [norm, pool]

        # §3.1/§3.5: ReLU after every conv and fc layer but fc8 (it feeds the softmax). In-place is
        # safe: LRN/pool/conv keep what they need for backward from the ReLU's output, which
        # nothing overwrites.
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 96, 11, stride=4)),  # 227 -> 55
                    ("relu1", nn.ReLU(inplace=True)),
                    *norm_pool(1),  # -> 27
                    ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=groups)),  # 27
                    ("relu2", nn.ReLU(inplace=True)),
                    *norm_pool(2),  # -> 13
                    ("conv3", nn.Conv2d(256, 384, 3, padding=1)),  # crosses the towers
                    ("relu3", nn.ReLU(inplace=True)),
                    ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=groups)),
                    ("relu4", nn.ReLU(inplace=True)),
                    ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=groups)),
                    ("relu5", nn.ReLU(inplace=True)),
                    ("pool5", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=ceil_pool)),  # -> 6x6x256
                ]
            )
        )
        # §4.2: dropout 0.5 on the outputs of the two hidden fully connected layers.
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc6", nn.Linear(256 * 6 * 6, 4096)),
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
    "the paper's network (§3.5, Fig. 2): two towers (groups=2), LRN k=2 after conv1/conv2, "
    "227x227 input, 60,965,224 parameters",
    default_init="paper",
)
def alexnet(
    num_classes: int = 1000, in_channels: int = 3, groups: int = 2, dropout: float = 0.5, lrn: str = "paper"
):
    return AlexNet(num_classes, in_channels, groups=groups, dropout=dropout, lrn=lrn)


@register_model(
    "Caffe's bvlc_alexnet: the paper's shapes, LRN in Caffe's convention (k=1, alpha/n), "
    "conv -> ReLU -> norm -> pool, pooled sizes rounded up as Caffe does",
    default_init="caffe",
    recipe="caffe",
    weights="bvlc_alexnet",
)
def alexnet_caffe(num_classes: int = 1000, in_channels: int = 3, groups: int = 2, dropout: float = 0.5):
    return AlexNet(num_classes, in_channels, groups=groups, dropout=dropout, lrn="caffe", ceil_pool=True)


@register_model(
    "Caffe's bvlc_reference_caffenet: like alexnet_caffe but max-pool before LRN",
    default_init="caffe",
    recipe="caffe",
    weights="caffenet",
)
def caffenet(num_classes: int = 1000, in_channels: int = 3, groups: int = 2, dropout: float = 0.5):
    return AlexNet(
        num_classes,
        in_channels,
        groups=groups,
        dropout=dropout,
        lrn="caffe",
        pool_before_norm=True,
        ceil_pool=True,
    )


class AlexNetOWT(ConvNet):
    """torchvision's AlexNet, from "One weird trick for parallelizing CNNs" (Krizhevsky, 2014):
    64-192-384-256-256 kernels, no LRN, no groups, adaptive 6x6 average pool, dropout *before*
    fc6 and fc7. Module indices match torchvision's so its state_dicts load with strict=True."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5):
        super().__init__(input_size=224, in_channels=in_channels, num_classes=num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2),
            nn.ReLU(inplace=True),  # 0, 1
            nn.MaxPool2d(3, 2),  # 2
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),  # 3-5
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),  # 6, 7
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),  # 8, 9
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),  # 10-12
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),  # 0-2
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),  # 3-5
            nn.Linear(4096, num_classes),  # 6
        )
        self.finish()


@register_model(
    "torchvision's 'one weird trick' AlexNet: 64-192-384-256-256, no LRN, 224 input, "
    "torchvision parameter names",
    recipe="owt",
    weights="torchvision",
)
def alexnet_owt(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5):
    return AlexNetOWT(num_classes, in_channels, dropout)
