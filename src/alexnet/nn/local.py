"""A locally connected layer: a convolution whose filters are not shared across positions.

cuda-convnet's `type=local` layers (footnote 3's CIFAR-10 net: layers-conv-local-11pct.cfg,
local3 and local4) give every output position its own filter bank and its own biases
(layer.py's LocalUnsharedLayerParser: weights (modules * filterPixels * channels, filters),
biases (modules * filters, 1)); output side 1 + ceil((2 * padding + side - filter) / stride).

The forward pass gathers the k x k patches into a (L, N, C k k) tensor — k*k shifted slices of the
padded input, stacked, one copy — and multiplies it by the weights in one batched product over the
L positions: (L, N, C k k) @ (L, C k k, F). On the 2-core CPU, forward and backward, that is about
2x faster than F.unfold followed by the same product (unfold's (N, C k k, L) must be transposed,
and the product then copies every position's matrix) or by einsum, and 5-8x faster than a loop of
per-position products (benchmarks/local_layer.py). Autograd's backward of those ops is the two
transposed products and k*k slice additions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def local_out_side(side: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """cuda-convnet's modulesX: 1 + ceil((2 * padding + side - filterSize) / stride); 0 if none fit."""
    span = 2 * padding + side - kernel_size
    return 0 if span < 0 else 1 + math.ceil(span / stride)


@torch.fx.wrap  # one node of a symbolic trace (it reads shapes), checked when the graph runs
def _check_side(x: torch.Tensor, in_size: int) -> torch.Tensor:
    if tuple(x.shape[2:]) != (in_size, in_size):
        raise ValueError(
            f"LocallyConnected2d expects {in_size}x{in_size} input (its filters are tied "
            f"to positions), got {'x'.join(map(str, x.shape[2:]))}"
        )
    return x


class LocallyConnected2d(nn.Module):
    """(N, C, H, W) -> (N, out_channels, out_h, out_w) for square inputs of side `in_size`.

    weight: (out_h * out_w, in_channels * k * k, out_channels), the position-major layout the
    batched product reads without a copy; its middle axis is ordered (channel, ky, kx) like
    F.unfold's. bias: (out_channels, out_h, out_w), one per output unit as in cuda-convnet.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        in_size: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.in_size = in_channels, out_channels, in_size
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.out_size = local_out_side(in_size, kernel_size, stride, padding)
        if self.out_size < 1:
            raise ValueError(
                f"LocallyConnected2d: a {kernel_size}x{kernel_size} filter does not fit a "
                f"{in_size}x{in_size} input padded by {padding}"
            )
        if (self.out_size - 1) * stride + kernel_size > in_size + 2 * padding:
            # cuda-convnet's ceil lets the last filter hang over the padding; F.unfold does not
            raise ValueError(
                f"LocallyConnected2d: stride {stride} does not tile {in_size} + 2 x {padding} "
                f"with {kernel_size}x{kernel_size} filters"
            )
        positions = self.out_size**2
        self.weight = nn.Parameter(torch.empty(positions, in_channels * kernel_size**2, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels, self.out_size, self.out_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # a plain layer's default (the fan-in is the same as a conv's); models set their own init
        bound = 1 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_side(x, self.in_size)
        n = x.shape[0]
        k, s, o = self.kernel_size, self.stride, self.out_size
        xp = F.pad(x, [self.padding] * 4).permute(0, 2, 3, 1)  # (N, H, W, C): a view when channels_last
        span = (o - 1) * s + 1
        patches = [xp[:, dy : dy + span : s, dx : dx + span : s] for dy in range(k) for dx in range(k)]
        # (N, o, o, C, k*k) -> (o, o, N, C, k*k) -> (L, N, C k k): F.unfold's (channel, ky, kx) order
        cols = torch.stack(patches, 4).permute(1, 2, 0, 3, 4).reshape(o * o, n, -1)
        out = torch.bmm(cols, self.weight.to(cols.dtype))  # (L, N, F)
        out = out.permute(1, 2, 0).reshape(n, self.out_channels, o, o)
        return out + self.bias.to(out.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, in_size={self.in_size}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        )
