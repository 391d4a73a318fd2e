"""Local response normalisation across channels (paper §3.3).

    b_i = a_i / (k + alpha' * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a_j^2) ** beta

The paper writes alpha' = alpha (k=2, n=5, alpha=1e-4, beta=0.75). Caffe (and
torch.nn.LocalResponseNorm) divide alpha by the window size n: alpha' = alpha / n, and
bvlc_alexnet uses k=1. Both conventions are served; `convention` says which one `alpha`
is written in, so the numbers in a config match the paper or the prototxt they came from.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONVENTIONS = ("paper", "caffe")


def effective_alpha(alpha: float, size: int, convention: str) -> float:
    """The coefficient that multiplies the window sum of squares."""
    if convention not in CONVENTIONS:
        raise ValueError(f"LRN convention must be one of {CONVENTIONS}, got {convention!r}")
    return alpha / size if convention == "caffe" else alpha


def check_lrn_args(size: int, alpha: float, beta: float, k: float, convention: str) -> None:
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        # the paper's window i-n/2 .. i+n/2 is symmetric only for odd n (Caffe requires it too)
        raise ValueError(f"LRN size must be a positive odd integer, got {size!r}")
    if alpha < 0 or beta < 0:
        raise ValueError(f"LRN alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
    if k <= 0:
        raise ValueError(f"LRN k must be > 0 (it keeps the denominator positive), got k={k}")
    effective_alpha(alpha, size, convention)


def channel_window_sum(sq: torch.Tensor, size: int) -> torch.Tensor:
    """sum_{j=i-size//2}^{i+size//2} sq_j along dim 1, zero outside [0, C)."""
    half = size // 2
    c = sq.shape[1]
    flat = sq.reshape(sq.shape[0], c, -1)
    padded = F.pad(flat, (0, 0, half, half))
    out = padded[:, 0:c].clone()
    for d in range(1, size):
        out += padded[:, d : d + c]
    return out.reshape(sq.shape)


def lrn_reference(x: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                  k: float = 2.0, convention: str = "paper") -> torch.Tensor:
    """Plain autograd implementation: the definition, written once, used as the test oracle."""
    a = effective_alpha(alpha, size, convention)
    scale = k + a * channel_window_sum(x * x, size)
    return x / scale.pow(beta)


class LocalResponseNorm(nn.Module):
    """Cross-channel LRN. Defaults are the paper's (§3.3): n=5, k=2, alpha=1e-4, beta=0.75."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                 convention: str = "paper"):
        super().__init__()
        check_lrn_args(size, alpha, beta, k, convention)
        self.size, self.alpha, self.beta, self.k, self.convention = size, alpha, beta, k, convention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"LocalResponseNorm expects (N, C, ...) input, got shape {tuple(x.shape)}")
        return lrn_reference(x, self.size, self.alpha, self.beta, self.k, self.convention)

    def extra_repr(self) -> str:
        return (f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
                f"convention={self.convention!r}")
