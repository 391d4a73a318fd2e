"""Local response normalisation (paper §3.3) as two Triton kernels, for CUDA tensors.

    y_i  = x_i s_i^-b,   s_i = k + a' sum_{j=max(0,i-n/2)}^{min(C-1,i+n/2)} x_j^2
    dx_i = g_i s_i^-b - 2 a' b x_i sum_{j: i in win(j)} g_j x_j s_j^(-b-1)     (win is symmetric)

One kernel per pass, like the C kernel on CPU (nn/lrn_kernel.c): the forward reads x once from
memory and writes y; the backward reads g and x and writes dx, recomputing s from x instead of
keeping an activation-sized s tensor between the passes. Each program owns a tile of
BLOCK_C channels x BLOCK_P pixels of one image; the window sums come from shifted loads of the
same tile, which hit the cache after the first (the tile is re-read n times in the forward and
about n^2 times in the backward, from L1/L2, not from memory). Loads and stores keep the tensor's
dtype (fp32, bf16, fp16); the arithmetic is fp32.

Both memory formats run through one kernel: x is seen as (N, C, P) with strides (sn, sc, sp),
P = H*W; NCHW has sp = 1, channels_last (NHWC) has sc = 1. Triton specialises integer arguments
equal to 1, so the compiler knows which axis is contiguous and coalesces along it.

With TRITON_INTERPRET=1 set before this module is imported, the kernels run on CPU tensors in
Triton's interpreter: that is how CI tests them without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .lrn_args import check_lrn_args, effective_alpha


@triton.jit
def _tile(ptr, base, c, p, C, P, sc, sp):
    """The [BLOCK_C, BLOCK_P] tile of channels c (zero outside [0, C)) at pixels p, as fp32."""
    mask = ((c >= 0) & (c < C))[:, None] & (p < P)[None, :]
    return tl.load(ptr + base + c[:, None] * sc + p[None, :] * sp, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _scale(x_ptr, base, c, p, C, P, sc, sp, a, k, SIZE: tl.constexpr):
    """(s, x): s = k + a * (window sum of x^2 around channels c), and x at channels c."""
    HALF: tl.constexpr = SIZE // 2
    centre = _tile(x_ptr, base, c, p, C, P, sc, sp)
    acc = centre * centre
    for d in tl.static_range(SIZE):
        if d != HALF:
            v = _tile(x_ptr, base, c + (d - HALF), p, C, P, sc, sp)
            acc += v * v
    return k + a * acc, centre


@triton.jit
def _powers(s, beta, BETA_3_4: tl.constexpr):
    """(s^-beta, s^(-beta-1)) for s > 0 (k > 0 keeps it there). The paper's beta = 0.75 as the C
    kernel computes it: s^-3/4 = s^-1/2 (s s^-1/2)^-1/2, two rsqrt and no log2/exp2; any other
    beta through one log2 and two exp2. The unused power costs nothing: the compiler drops it."""
    if BETA_3_4:
        r = tl.rsqrt(s)
        lo = r * tl.rsqrt(s * r)
        hi = lo * r * r
    else:
        lg = tl.log2(s)
        lo = tl.exp2(-beta * lg)
        hi = tl.exp2((-beta - 1.0) * lg)
    return lo, hi


@triton.jit
def _lrn_fwd_kernel(
    x_ptr,
    y_ptr,
    C,
    P,
    sn,
    sc,
    sp,
    p_blocks,
    a,
    beta,
    k,
    SIZE: tl.constexpr,
    BETA_3_4: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    pid = tl.program_id(0)
    n, pb = pid // p_blocks, pid % p_blocks
    base = n.to(tl.int64) * sn  # a batch of large maps passes 2**31 elements
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    s, x = _scale(x_ptr, base, c, p, C, P, sc, sp, a, k, SIZE)
    y = x * _powers(s, beta, BETA_3_4)[0]
    mask = (c < C)[:, None] & (p < P)[None, :]
    tl.store(y_ptr + base + c[:, None] * sc + p[None, :] * sp, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _lrn_bwd_kernel(
    g_ptr,
    x_ptr,
    dx_ptr,
    C,
    P,
    sn,
    sc,
    sp,
    p_blocks,
    a,
    beta,
    k,
    SIZE: tl.constexpr,
    BETA_3_4: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    pid = tl.program_id(0)
    n, pb = pid // p_blocks, pid % p_blocks
    base = n.to(tl.int64) * sn
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    s, x = _scale(x_ptr, base, c, p, C, P, sc, sp, a, k, SIZE)
    dx = _tile(g_ptr, base, c, p, C, P, sc, sp) * _powers(s, beta, BETA_3_4)[0]
    # sum_j g_j x_j s_j^(-b-1) over the window (zero outside [0, C)). A loop, not unrolled: the
    # unrolled form keeps n (n + 1) tiles live and spills at 255 registers (ptxas, sm_90).
    acc = tl.zeros([BLOCK_C, BLOCK_P], dtype=tl.float32)
    for d in range(SIZE):
        j = c + (d - SIZE // 2)
        sj, xj = _scale(x_ptr, base, j, p, C, P, sc, sp, a, k, SIZE)
        acc += _tile(g_ptr, base, j, p, C, P, sc, sp) * xj * _powers(sj, beta, BETA_3_4)[1]
    dx -= (2.0 * a * beta) * x * acc
    mask = (c < C)[:, None] & (p < P)[None, :]
    tl.store(dx_ptr + base + c[:, None] * sc + p[None, :] * sp, dx.to(dx_ptr.dtype.element_ty), mask=mask)


DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Elements per program and warps per program, chosen so that neither kernel spills on sm_80 or
# sm_90 in any configuration the networks launch (ptxas -v, tests/triton_targets.py: forward 8
# elements per thread, 12-62 registers; backward 4 per thread, 28-80). The fastest setting on a
# GPU: not yet measured.
TILES = {"fwd": 1024, "bwd": 512}
NUM_WARPS = 4


def _format(x: torch.Tensor) -> torch.memory_format:
    """channels_last stays channels_last (the layout `alexnet train` runs in); all else NCHW."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _fit(n: int, most: int) -> int:
    """The widest power-of-two block (32..`most`, or n rounded up if shorter) that covers n with
    at most 1/8 of its lanes masked, else the one that masks fewest: 96 channels run as three
    blocks of 32, not one of 128 with a quarter of the lanes idle (Caffe's 13 x 13 maps: 64)."""
    top = min(triton.next_power_of_2(n), most)
    widths = [top >> i for i in range(top.bit_length()) if top >> i >= min(32, top)]  # widest first

    def idle(b):
        return triton.cdiv(n, b) * b - n

    return next((b for b in widths if 8 * idle(b) <= triton.cdiv(n, b) * b), min(widths, key=idle))


def blocks(c: int, p: int, channels_last: bool, tile: int) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_P): a tile that runs along the contiguous axis, `tile` elements or fewer."""
    if channels_last or p == 1:  # channels contiguous: a tile spans the channels, a few pixels deep
        block_c = _fit(c, 256)
        return block_c, min(triton.next_power_of_2(p), max(1, tile // block_c))
    block_p = _fit(p, 256)  # pixels contiguous: a row, a few channels deep
    return min(triton.next_power_of_2(c), max(1, tile // block_p)), block_p


def launch_args(
    kernel, tile: int, tensors: list[torch.Tensor], size: int, a: float, beta: float, k: float
) -> tuple[tuple[int, int], tuple, dict] | None:
    """(grid, arguments, keyword arguments) of `kernel` over the (N, C, P) view of the tensors,
    which share one shape and layout; None for an empty batch. What _launch runs, and what
    tests/test_lrn_triton.py compiles for real GPUs."""
    x = tensors[0]
    if x.numel() == 0:
        return None
    n, c = x.shape[0], x.shape[1]
    p = x.numel() // (n * c)
    channels_last = _format(x) is torch.channels_last
    sn, sc, sp = (x.stride(0), 1, c) if channels_last else (c * p, p, 1)
    block_c, block_p = blocks(c, p, channels_last, tile)
    p_blocks = triton.cdiv(p, block_p)
    grid = (n * p_blocks, triton.cdiv(c, block_c))
    return (
        grid,
        (*tensors, c, p, sn, sc, sp, p_blocks, a, beta, k),
        dict(SIZE=size, BETA_3_4=beta == 0.75, BLOCK_C=block_c, BLOCK_P=block_p, num_warps=NUM_WARPS),
    )


def _launch(
    kernel, tile: int, tensors: list[torch.Tensor], size: int, a: float, beta: float, k: float
) -> None:
    planned = launch_args(kernel, tile, tensors, size, a, beta, k)
    if planned is not None:
        grid, args, kwargs = planned
        torch.library.wrap_triton(kernel)[grid](*args, **kwargs)


# On a GPU the ops are triton_ops, which torch.compile traces into (inductor sees the kernels);
# under TRITON_INTERPRET=1 the kernels are Python functions that cannot run on fake tensors, so the
# ops are opaque custom ops with fake implementations instead (what CI compiles on CPU).
INTERPRETED = not isinstance(_lrn_fwd_kernel, triton.runtime.jit.JITFunction)
_op = torch.library.custom_op if INTERPRETED else torch.library.triton_op


@_op("alexnet::lrn_triton", mutates_args=())
def _lrn_triton(x: torch.Tensor, size: int, a: float, beta: float, k: float) -> torch.Tensor:
    x = x.contiguous(memory_format=_format(x))
    y = torch.empty_like(x)
    _launch(_lrn_fwd_kernel, TILES["fwd"], [x, y], size, a, beta, k)
    return y


@_op("alexnet::lrn_triton_backward", mutates_args=())
def _lrn_triton_backward(
    g: torch.Tensor, x: torch.Tensor, size: int, a: float, beta: float, k: float
) -> torch.Tensor:
    fmt = _format(x)
    x = x.contiguous(memory_format=fmt)
    g = g.contiguous(memory_format=fmt).to(x.dtype)
    dx = torch.empty_like(x)
    _launch(_lrn_bwd_kernel, TILES["bwd"], [g, x, dx], size, a, beta, k)
    return dx


if INTERPRETED:

    def _fake(*args):
        x = args[-5]
        return torch.empty_like(x.contiguous(memory_format=_format(x)))

    _lrn_triton.register_fake(_fake)
    _lrn_triton_backward.register_fake(_fake)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])  # only x: the backward recomputes s
    ctx.consts = inputs[1:]


def _grad(ctx, gy):
    (x,) = ctx.saved_tensors
    return _lrn_triton_backward(gy, x, *ctx.consts), None, None, None, None


_lrn_triton.register_autograd(_grad, setup_context=_setup)


def local_response_norm_triton(
    x: torch.Tensor,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 2.0,
    convention: str = "paper",
) -> torch.Tensor:
    """LRN of an (N, C, ...) float32/bfloat16/float16 tensor by the Triton kernels; differentiable,
    and one opaque-to-autograd op that torch.compile can trace into (torch.library.triton_op)."""
    check_lrn_args(size, alpha, beta, k, convention)
    if x.dim() < 2 or x.dtype not in DTYPES:
        raise ValueError(
            f"the Triton LRN takes (N, C, ...) tensors of {[str(d) for d in DTYPES]}, "
            f"got shape {tuple(x.shape)} {x.dtype}"
        )
    return _lrn_triton(x, size, effective_alpha(alpha, size, convention), float(beta), float(k))
