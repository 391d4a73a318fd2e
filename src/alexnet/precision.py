"""`--precision auto`: bfloat16 autocast where the hardware computes it natively, fp32 elsewhere.

On a CPU without native bf16 (no AVX512_BF16 or AMX-BF16), oneDNN emulates bf16 matrix products
by widening to fp32 and the step gets slower, not faster; with it, the convolutions and GEMMs
run at about twice the fp32 rate (measured: docs/benchmarks.md). On CUDA, bf16 where the GPU
supports it (Ampere and later). fp16 is never chosen automatically: it needs loss scaling.
"""
from __future__ import annotations

import platform
from pathlib import Path

import torch

CHOICES = ("auto", "fp32", "bf16", "fp16")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of x86 CPUs with bf16 units
SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where unreadable)."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_cpu() -> str:
    """'AMD EPYC 9B45, 2 threads, flags: avx2 fma avx512f avx512_bf16': what speed depends on."""
    flags = cpu_flags()
    shown = " ".join(f for f in SHOWN_FLAGS if f in flags) or "unknown"
    return f"{cpu_name()}, {torch.get_num_threads()} threads, flags: {shown}"


def resolve_precision(requested: str, device: str | torch.device) -> tuple[str, str]:
    """(precision, why) for `requested` in CHOICES on `device`: "auto" picks bf16 where it is
    native and fp32 elsewhere; anything else is taken as asked."""
    if requested not in CHOICES:
        raise ValueError(f"precision {requested!r}: expected one of {CHOICES}")
    if requested != "auto":
        return requested, f"precision {requested} (as asked)"
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16", "precision auto -> bf16 autocast (the GPU supports bfloat16)"
        return "fp32", "precision auto -> fp32 (this GPU has no native bfloat16)"
    if device.type == "cpu":
        native = sorted(set(NATIVE_BF16) & cpu_flags())
        if native:
            return "bf16", f"precision auto -> bf16 autocast (the CPU has native bfloat16: {', '.join(native)})"
        return "fp32", ("precision auto -> fp32 (no avx512_bf16/amx_bf16 on this CPU: bf16 would be "
                        "emulated, and slower)")
    return "fp32", f"precision auto -> fp32 (on {device.type})"


def autocast(precision: str, device: str | torch.device, model: torch.nn.Module | None = None):
    """The autocast context for a resolved precision ("fp32": a no-op context). Given the model,
    under CPU bf16 its stem convolution is set to run in float32 (`keep_stem_fp32`)."""
    from contextlib import nullcontext

    dtype = AMP_DTYPES.get(precision)
    if model is not None and precision == "bf16" and torch.device(device).type == "cpu":
        keep_stem_fp32(model)
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype else nullcontext()


def _stem(model: torch.nn.Module) -> torch.nn.Conv2d | None:
    """The ImageNet nets' first layer: a convolution of the RGB image with a stride of 4."""
    first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if first is not None and first.in_channels <= 4 and max(first.stride) >= 4:
        return first
    return None


class _Float32Hooks:
    """Forward pre/post hooks that run one module with autocast off, on float32 input."""

    def __init__(self):
        self.open: list = []

    def pre(self, module, args):
        if torch.compiler.is_compiling() or not torch.is_autocast_enabled("cpu"):
            return None
        ctx = torch.autocast("cpu", enabled=False)
        ctx.__enter__()
        self.open.append(ctx)
        return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

    def post(self, module, args, out):  # registered with always_call: runs even if forward raised
        if self.open:
            self.open.pop().__exit__(None, None, None)


def keep_stem_fp32(model: torch.nn.Module) -> bool:
    """Under CPU bf16 autocast, run the stem (11x11 stride-4 convolution of the 3-channel image)
    in float32. oneDNN's bf16 weight-gradient kernel for 3 input channels in channels_last is
    1.8x (alexnet) to 4.6x (alexnet_owt) slower than its float32 one, and with 3 input channels
    bf16 gains little in the forward (docs/benchmarks.md); the maps it makes are cast to bf16 by
    the next convolution. Idempotent; True if the model has such a stem."""
    stem = _stem(model)
    if stem is None:
        return False
    if not getattr(stem, "_fp32_under_autocast", False):
        hooks = _Float32Hooks()
        stem.register_forward_pre_hook(hooks.pre)
        stem.register_forward_hook(hooks.post, always_call=True)
        stem._fp32_under_autocast = True
    return True
