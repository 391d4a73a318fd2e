"""When a run must stop: a signal, a non-finite loss, non-finite weights, and all of it without
making the host wait for the device at every step.

Each step folds "was this loss finite?" into a device tensor (the first bad step); the host reads
it, together with a stop request and a finiteness check of the weights and optimiser state, once
per logging interval and before every save, in one small read that DDP ranks all-reduce first.
So every rank sees the same answer at the same step, a bad loss is noticed at most `log_every`
steps late, and a checkpoint never holds poisoned weights.
"""

from __future__ import annotations

import math
import os
import signal
import threading

import torch

from ..errors import RunFailure
from . import distributed


class NonFiniteLoss(RunFailure):
    pass


class Stop(Exception):
    def __init__(self, signum: int, during: str = ""):
        super().__init__(signal.Signals(signum).name + during)
        self.signum = signum


def on_signals(handler) -> dict:
    """Install `handler` for SIGTERM and SIGINT in this process (not in forked loader workers,
    which ignore them and end with their parent); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    pid = os.getpid()

    def guarded(signum, frame):
        if os.getpid() == pid:
            handler(signum, frame)

    return {s: signal.signal(s, guarded) for s in (signal.SIGTERM, signal.SIGINT)}


def restore(handlers: dict) -> None:
    for s, h in handlers.items():
        signal.signal(s, h)


def raise_stop(signum, _frame):
    """Start-up (datasets, statistics, model) has nothing to save: stop at once, cleanly."""
    raise Stop(signum, " during start-up")


class Guard:
    def __init__(self, device: torch.device):
        self.device = device
        self.first_bad = torch.full((), math.inf, dtype=torch.float64, device=device)
        self.stop: dict = {}  # {"sig": signum} once a signal came

    def note_loss(self, loss: torch.Tensor, step: int) -> None:
        """Remember the first step whose loss was not finite; a device op, no host sync."""
        new = torch.isfinite(loss).logical_not() & (self.first_bad == math.inf)
        self.first_bad = torch.where(new, float(step), self.first_bad)

    def read(self, tensors, tally_sums: torch.Tensor) -> dict:
        """The worst over all ranks of: first non-finite loss step, non-finite weights, a stop
        signal (one all-reduce); and this rank's running image count and loss (sum and mean).
        One device-to-host copy."""
        # a sum is non-finite if any element is (or, harmlessly, if it overflows: a diverged net)
        sums = torch.stack([t.detach().sum().float().to(self.device) for t in tensors])
        bad_weights = torch.isfinite(sums).logical_not().any().double()
        sig = torch.full((), float(self.stop.get("sig", 0)), dtype=torch.float64, device=self.device)
        flags = distributed.all_max(torch.stack([-self.first_bad, bad_weights, sig]))
        neg_bad, bad_weights, sig, n, loss = torch.cat([flags, tally_sums[:2]]).tolist()
        return {
            "bad_step": -neg_bad,
            "bad_weights": bad_weights > 0,
            "signal": int(sig),
            "n": n,
            "loss_sum": loss,
            "loss": loss / max(n, 1),
        }

    @staticmethod
    def raise_if_bad(r: dict, step: int, epoch: int, last: str | None) -> None:
        if r["bad_step"] == math.inf and not r["bad_weights"]:
            return
        what = (
            f"the loss became non-finite at step {int(r['bad_step'])}"
            if r["bad_step"] < math.inf
            else f"the weights became non-finite by step {step}"
        )
        good = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        raise NonFiniteLoss(
            f"{what} (epoch {epoch}); stopping without saving; {good} (start a new run with a lower --lr)"
        )
