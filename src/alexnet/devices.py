"""The device a flag names (cpu, cuda, cuda:N), checked against this machine: one check for
every command and the config, so that a wrong --device fails at once, in one line."""

from __future__ import annotations

import torch

from .errors import BadInput


def check_device(name: str, flag: str = "--device") -> torch.device:
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise BadInput(f"{flag} {name}: not a device; expected cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise BadInput(f"{flag} {name}: not a device; expected cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"{flag} {name}: CUDA is not available on this machine (torch {torch.__version__})")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BadInput(f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev
