"""Which precision a device trains fastest in, for `--precision auto`.

Not the paper's concern (it trained in fp32 on GTX 580s); bf16 autocast keeps fp32's exponent
range, so unlike fp16 it needs no loss scaling, and it is the speed-up wherever the hardware
multiplies bf16 natively: CUDA GPUs from Ampere (sm_80) on, and CPUs with AVX512_BF16 or AMX.
Elsewhere bf16 is emulated and slower than fp32, so auto picks fp32 there.
"""

from __future__ import annotations

import platform
from contextlib import nullcontext
from pathlib import Path

import torch

from .errors import BadInput

PRECISIONS = ("fp32", "bf16", "fp16")
CHOICES = ("auto",) + PRECISIONS
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's fields as Linux lists them (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    return set(cpu_info(path).get("flags", "").split())


def cpu_name() -> str:
    """The CPU's model name, to print beside every CPU measurement."""
    return cpu_info().get("model name") or platform.processor() or platform.machine()


def cpu_native_bf16() -> tuple[bool, str]:
    """(has native bf16 arithmetic, which feature says so)."""
    probes = [
        ("AMX", getattr(torch.cpu, "_is_amx_tile_supported", None)),
        ("AVX512_BF16", getattr(torch.cpu, "_is_avx512_bf16_supported", None)),
    ]
    known = [(name, probe()) for name, probe in probes if probe is not None]
    if not known:  # an older torch: ask the kernel instead
        flags = cpu_flags()
        known = [("AMX", "amx_bf16" in flags), ("AVX512_BF16", "avx512_bf16" in flags)]
    for name, has in known:
        if has:
            return True, name
    return False, "neither AVX512_BF16 nor AMX"


def auto_precision(device: str | torch.device) -> tuple[str, str]:
    """("bf16" | "fp32", a one-line reason to print) for training on `device`."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(f"--device {device}: CUDA is not available on this machine")
        name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", f"{name} (sm_{major}{minor}) multiplies bf16 natively"
        return "fp32", (
            f"{name} (sm_{major}{minor}) has no native bf16 (Ampere or newer has); "
            f"--precision fp16 uses its fp16 units with loss scaling"
        )
    if device.type == "cpu":
        native, feature = cpu_native_bf16()
        if native:
            return "bf16", f"the CPU has {feature}: native bf16 arithmetic"
        return "fp32", f"the CPU has {feature}: bf16 would be emulated, slower than fp32"
    return "fp32", f"{device.type}: bf16 speed not established here, fp32 is the safe choice"


def resolve_precision(value: str, device: str | torch.device) -> tuple[str, str]:
    """`--precision` as given ("auto" or one of PRECISIONS) -> (precision, reason)."""
    if value == "auto":
        return auto_precision(device)
    if value not in PRECISIONS:
        raise BadInput(f"--precision must be auto or one of {', '.join(PRECISIONS)}, got {value!r}")
    return value, "as requested"


def describe_cpu() -> str:
    """'AMD EPYC 9B45, 2 threads, flags: avx2 fma avx512f avx512_bf16': what CPU speed depends on."""
    flags = cpu_flags()
    shown = " ".join(f for f in SHOWN_FLAGS if f in flags) or "unknown"
    return f"{cpu_name()}, {torch.get_num_threads()} threads, flags: {shown}"


def autocast(precision: str, device: str | torch.device):
    """The autocast context for a resolved precision ("fp32": a no-op context)."""
    dtype = AMP_DTYPES.get(precision)
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype else nullcontext()
