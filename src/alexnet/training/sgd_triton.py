"""The paper's update (§5) as one Triton kernel for CUDA tensors: one pass over memory.

    v <- mu v - lr wd w - lr g,   w <- w + v

As four torch ops the update reads and writes the velocity four times and the weights twice,
11 passes over memory (61 M parameters, 244 MB each in fp32: 2.7 GB a step); fused it reads w, g
and v once and writes v and w once, 5 passes. The CPU does the same in C (nn/sgd_kernel.c), with
the same arithmetic: v' = mu v + (-lr wd) w + (-lr) g in fp32.

One launch per parameter tensor; weights and gradient laid out alike (any dense layout: the
kernel walks memory flat). With TRITON_INTERPRET=1 set before this module is imported, the
kernel runs on CPU tensors in Triton's interpreter: that is how CI tests it without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _paper_sgd_kernel(w_ptr, g_ptr, v_ptr, n, mu, a, b, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # fc6 alone is 38 M elements
    mask = i < n
    w = tl.load(w_ptr + i, mask=mask)
    v = mu * tl.load(v_ptr + i, mask=mask) + a * w + b * tl.load(g_ptr + i, mask=mask)
    tl.store(v_ptr + i, v, mask=mask)
    tl.store(w_ptr + i, w + v, mask=mask)


BLOCK = 1024  # 8 elements per thread at 4 warps; the fastest setting on a GPU: not yet measured
NUM_WARPS = 4
DTYPES = (torch.float32,)


def launch_args(
    w: torch.Tensor, g: torch.Tensor, v: torch.Tensor, lr: float, mu: float, wd: float
) -> tuple[tuple[int], tuple, dict]:
    """(grid, arguments, keyword arguments) of one update: what paper_sgd_ launches, and what
    tests/test_lrn_triton.py compiles for real GPUs."""
    n = w.numel()
    return (
        (triton.cdiv(n, BLOCK),),
        (w, g, v, n, float(mu), -float(lr) * float(wd), -float(lr)),
        dict(BLOCK=BLOCK, num_warps=NUM_WARPS),
    )


def paper_sgd_(w: torch.Tensor, g: torch.Tensor, v: torch.Tensor, lr: float, mu: float, wd: float) -> None:
    """Update w and v in place from g; all three float32 and laid out alike in one dense block."""
    if w.numel():
        grid, args, kwargs = launch_args(w, g, v, lr, mu, wd)
        _paper_sgd_kernel[grid](*args, **kwargs)
