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


def autocast(precision: str, device: str | torch.device):
    """The autocast context for a resolved precision ("fp32": a no-op context)."""
    from contextlib import nullcontext

    dtype = AMP_DTYPES.get(precision)
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype else nullcontext()
