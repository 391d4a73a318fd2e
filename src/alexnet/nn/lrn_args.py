"""The LRN's hyper-parameters (§3.3: n, k, alpha, beta) and the two ways alpha is written, checked
once for every implementation (lrn.py: the reference, C and torch-ops forms; lrn_triton.py)."""

from __future__ import annotations

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
