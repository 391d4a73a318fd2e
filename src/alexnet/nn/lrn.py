"""Local response normalisation across channels (paper §3.3).

    b_i = a_i / (k + alpha' * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a_j^2) ** beta

The paper writes alpha' = alpha (k=2, n=5, alpha=1e-4, beta=0.75). Caffe (and
torch.nn.LocalResponseNorm) divide alpha by the window size n: alpha' = alpha / n, and
bvlc_alexnet uses k=1. Both conventions are served; `convention` says which one `alpha`
is written in, so the numbers in a config match the paper or the prototxt they came from.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from . import native
from .lrn_args import check_lrn_args, effective_alpha


def channel_window_sum(t: torch.Tensor, size: int) -> torch.Tensor:
    """sum_{j=i-size//2}^{i+size//2} t_j along dim 1, zero outside [0, C); any layout."""
    half, c = size // 2, t.shape[1]
    padded = F.pad(t, [0, 0] * (t.dim() - 2) + [half, half])
    out = padded[:, 0:c].clone()
    for d in range(1, size):
        out += padded[:, d : d + c]
    return out


def lrn_reference(
    x: torch.Tensor,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 2.0,
    convention: str = "paper",
) -> torch.Tensor:
    """Plain autograd implementation: the definition, written once, used as the test oracle."""
    a = effective_alpha(alpha, size, convention)
    scale = k + a * channel_window_sum(x * x, size)
    return x / scale.pow(beta)


# ---- the fast path: one autograd Function with an analytic backward -------------------------
#   y_i = x_i s_i^-b,  s_i = k + a sum_{j in win(i)} x_j^2
#   dL/dx_i = g_i s_i^-b - 2ab x_i sum_{j in win(i)} g_j x_j s_j^(-b-1)   (win is symmetric)
# Only x and s are saved; the window sum is done once per pass. On CPU (float32/float64,
# contiguous or channels_last) a fused C kernel makes each pass a single sweep over memory; on
# CUDA two Triton kernels do the same (nn/lrn_triton.py, when triton is installed); elsewhere the
# same formulas run as torch ops in float32.
_KERNEL = Path(__file__).with_name("lrn_kernel.c")
_BETA_MODES = {0.75: 1, 0.5: 2, 1.0: 3}
_DTYPES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2}


def _native_layout(x: torch.Tensor) -> str | None:
    if x.device.type != "cpu" or x.dtype not in _DTYPES:
        return None
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return "nhwc"
    if x.dim() == 2:
        return "nhwc" if x.is_contiguous() else None  # (N, C): channels contiguous
    return "nchw" if x.is_contiguous() else None


# The C kernel is compiled and loaded when a LocalResponseNorm is built (or on the first eager
# call of the functional form), never inside a forward that torch.compile or torch.export traces:
# loading takes a lock and may run the compiler. `_native_ok` is None until then, then a bool.
_native_lib: ctypes.CDLL | None = None
_native_ok: bool | None = None


def load_native() -> bool:
    """Compile (once, cached on disk) and load the C kernel; whether it can run here."""
    global _native_lib, _native_ok
    if _native_ok is None:
        _native_lib = native.load(_KERNEL, openmp=True)
        _native_ok = _native_lib is not None
    return _native_ok


def _native_call(
    kind: str,
    layout: str,
    tensors: list[torch.Tensor],
    x: torch.Tensor,
    size: int,
    a: float,
    beta: float,
    k: float,
) -> None:
    lib = _native_lib if _native_ok else native.load(_KERNEL, openmp=True)  # (a direct op call)
    ptrs = [ctypes.c_void_p(t.data_ptr()) for t in tensors]
    g_ptr, x_ptr, out_ptr = ptrs if kind == "bwd" else (None, *ptrs)
    c, i64 = x.shape[1], ctypes.c_int64
    threads = torch.get_num_threads()
    if layout == "nchw":  # items: blocks of `block` pixels of one image, all channels (~128 KB)
        p = x[0, 0].numel()
        block = max(16, min(1024, (32768 // c) // 16 * 16, p))
        items, chunk = x.shape[0] * -(-p // block), 1
    else:  # items: pixels, C contiguous channels each
        p, block = 0, 0
        items = x.numel() // c
        chunk = max(16, min(1024, items // (8 * threads) + 1))  # dynamic chunks balance busy cores

    def run(i0: int, i1: int, chunk: int, threads: int) -> None:
        lib.lrn_run(
            ctypes.c_int(kind == "bwd"),
            ctypes.c_int(layout == "nhwc"),
            ctypes.c_int(_DTYPES[x.dtype]),
            x_ptr,
            g_ptr,
            out_ptr,
            i64(c),
            i64(p),
            i64(block),
            i64(size // 2),
            ctypes.c_double(a),
            ctypes.c_double(beta),
            ctypes.c_double(k),
            ctypes.c_int(_BETA_MODES.get(beta, 0)),
            i64(i0),
            i64(i1),
            i64(chunk),
            ctypes.c_int(threads),
        )

    if lib.lrn_openmp():  # on torch's OpenMP threads, one call
        run(0, items, chunk, threads)
    else:
        native.parallel_for(items, threads, lambda i0, i1: run(i0, i1, i1 - i0, 1))


def _torch_forward(x: torch.Tensor, size: int, a: float, beta: float, k: float):
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    s = channel_window_sum(xf * xf, size).mul_(a).add_(k)
    return (xf * s.pow(-beta)).to(x.dtype), s


def _torch_backward(g, x, s, size: int, a: float, beta: float) -> torch.Tensor:
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    gr = g.to(s.dtype) * s.pow(-beta)
    t = gr * xf / s
    return gr.sub_(channel_window_sum(t, size).mul_(xf).mul_(2 * a * beta)).to(x.dtype)


class _LRNFunction(torch.autograd.Function):
    """Torch-ops form (CUDA without triton, CPU half precision, no compiler): torch.compile traces
    and fuses it."""

    @staticmethod
    def forward(ctx, x, size, a, beta, k):
        y, s = _torch_forward(x, size, a, beta, k)
        ctx.save_for_backward(x, s)
        ctx.consts = (size, a, beta)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, s = ctx.saved_tensors
        return _torch_backward(g, x, s, *ctx.consts), None, None, None, None


# The C form is a torch custom op, so torch.compile treats it as one opaque call.
# The C kernel saves only x: its backward recomputes s, one activation-sized tensor less to keep.
@torch.library.custom_op("alexnet::lrn_native", mutates_args=())
def _lrn_native(x: torch.Tensor, size: int, a: float, beta: float, k: float) -> torch.Tensor:
    y = torch.empty_like(x)
    _native_call("fwd", _native_layout(x), [x, y], x, size, a, beta, k)
    return y


@_lrn_native.register_fake
def _(x, size, a, beta, k):
    return torch.empty_like(x)


@torch.library.custom_op("alexnet::lrn_native_backward", mutates_args=())
def _lrn_native_backward(
    g: torch.Tensor, x: torch.Tensor, size: int, a: float, beta: float, k: float
) -> torch.Tensor:
    layout = _native_layout(x)
    fmt = torch.channels_last if layout == "nhwc" and x.dim() == 4 else torch.contiguous_format
    g = g.contiguous(memory_format=fmt)
    dx = torch.empty_like(x)
    _native_call("bwd", layout, [g, x, dx], x, size, a, beta, k)
    return dx


@_lrn_native_backward.register_fake
def _(g, x, size, a, beta, k):
    return torch.empty_like(x)


def _native_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.consts = inputs[1:]


def _native_grad(ctx, gy):
    (x,) = ctx.saved_tensors
    return _lrn_native_backward(gy, x, *ctx.consts), None, None, None, None


_lrn_native.register_autograd(_native_grad, setup_context=_native_setup)


def _exporting() -> bool:
    """Under torch.export (torch >= 2.5 has is_exporting) or the TorchScript ONNX exporter."""
    check = getattr(torch.compiler, "is_exporting", None)
    return bool(check and check()) or torch.onnx.is_in_onnx_export()


def local_response_norm(
    x: torch.Tensor,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 2.0,
    convention: str = "paper",
) -> torch.Tensor:
    """Fast LRN: the same function as `lrn_reference`, with a fused analytic backward."""
    if x.dim() < 2:
        raise ValueError(f"LocalResponseNorm expects (N, C, ...) input, got shape {tuple(x.shape)}")
    a = effective_alpha(alpha, size, convention)
    if _exporting():  # torch.export / ONNX: plain ops that any runtime has
        return lrn_reference(x, size, alpha, beta, k, convention)
    if _native_ok is None and not torch.compiler.is_compiling():
        load_native()  # the functional form called before any LocalResponseNorm was built
    if _native_ok and _native_layout(x) is not None:
        return _lrn_native(x, size, a, float(beta), float(k))
    if _triton_path(x):
        return triton_lrn().local_response_norm_triton(x, size, alpha, beta, k, convention)
    return _LRNFunction.apply(x, size, a, float(beta), float(k))


# torch.fx.symbolic_trace records the LRN as one call (its dispatch above reads dtypes, layouts and
# devices, which a symbolic trace has not got): create_feature_extractor-style tools work.
torch.fx.wrap("local_response_norm")

_triton_module = None


def triton_lrn():
    """The Triton LRN module (nn/lrn_triton.py) if it can run here, else None (no triton, a torch
    without torch.library.triton_op, or ALEXNET_NO_TRITON=1): CUDA then uses the torch-ops form."""
    global _triton_module
    if _triton_module is None:
        _triton_module = False
        if not os.environ.get("ALEXNET_NO_TRITON") and hasattr(torch.library, "triton_op"):
            try:
                from . import lrn_triton  # optional: triton (CUDA builds of torch bring it)

                _triton_module = lrn_triton
            except ImportError:
                pass
    return _triton_module or None


def _triton_path(x: torch.Tensor) -> bool:
    """CUDA tensors in float32/bfloat16/float16 take the Triton kernels when they can run."""
    return x.device.type == "cuda" and triton_lrn() is not None and x.dtype in triton_lrn().DTYPES


class LocalResponseNorm(nn.Module):
    """Cross-channel LRN. Defaults are the paper's (§3.3): n=5, k=2, alpha=1e-4, beta=0.75."""

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        convention: str = "paper",
    ):
        super().__init__()
        check_lrn_args(size, alpha, beta, k, convention)
        self.size, self.alpha, self.beta, self.k, self.convention = size, alpha, beta, k, convention
        # load the kernels here, not inside a forward that torch.compile or torch.export traces
        load_native()
        if torch.cuda.is_available():
            triton_lrn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k, self.convention)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
            f"convention={self.convention!r}"
        )
