"""The paper's update rule and the learning-rate schedules.

§5: v <- 0.9 v - 0.0005 eps w - eps dL/dw,  w <- w + v.  The learning rate eps sits *inside* the
momentum buffer, so when eps is divided by 10 the velocity already accumulated keeps its size.
torch.optim.SGD keeps eps outside (v <- mu v + g + lambda w, w <- w - eps v): the two agree while
eps is constant and differ right after every drop. Both are offered.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import torch
from torch import nn

from ..models.init import named_weight_layers
from ..nn import native
from .config import TrainConfig

_KERNEL = Path(native.__file__).with_name("sgd_kernel.c")  # with the other C kernels (package data)


def _one_sweep(*tensors: torch.Tensor) -> bool:
    """float32 tensors on one device laid out alike in one dense block: a fused update can walk
    them flat."""
    p = tensors[0]
    fmt = (
        torch.channels_last
        if p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )
    return all(
        t.device == p.device
        and t.dtype == torch.float32
        and t.is_contiguous(memory_format=fmt)
        and t.stride() == p.stride()
        for t in tensors
    )


_triton_sgd = None


def triton_sgd():
    """The Triton update (training/sgd_triton.py) if it can run here, else None (no triton, or
    ALEXNET_NO_TRITON=1): CUDA then takes the four ops, each over all tensors at once."""
    global _triton_sgd
    if _triton_sgd is None:
        _triton_sgd = False
        if not os.environ.get("ALEXNET_NO_TRITON"):
            try:
                from . import sgd_triton  # optional dependency: triton (CUDA builds of torch bring it)

                _triton_sgd = sgd_triton
            except ImportError:
                pass
    return _triton_sgd or None


def _c_update(p: torch.Tensor, v: torch.Tensor, lr: float, mu: float, wd: float) -> bool:
    lib = native.load(_KERNEL, openmp=True)
    if lib is not None:
        lib.paper_sgd_float(
            *(ctypes.c_void_p(t.data_ptr()) for t in (p, p.grad, v)),
            ctypes.c_int64(p.numel()),
            ctypes.c_float(lr),
            ctypes.c_float(mu),
            ctypes.c_float(wd),
            ctypes.c_int(torch.get_num_threads()),
        )
    return lib is not None


def _triton_update(p: torch.Tensor, v: torch.Tensor, lr: float, mu: float, wd: float) -> bool:
    fused = triton_sgd()
    if fused is not None:
        fused.paper_sgd_(p, p.grad, v, lr, mu, wd)
    return fused is not None


# the update in one pass over memory, by device: C on CPU, Triton on CUDA (False: could not run)
FUSED = {"cpu": _c_update, "cuda": _triton_update}


class PaperSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            rest = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                v, fused = state["velocity"], FUSED.get(p.device.type)
                if not (fused and _one_sweep(p, p.grad, v) and fused(p, v, lr, mu, wd)):
                    rest.append((p, p.grad, v))
            if rest:  # the four ops, each over all remaining tensors at once (multi-tensor kernels)
                ps, gs, vs = (list(t) for t in zip(*rest))
                torch._foreach_mul_(vs, mu)
                torch._foreach_add_(vs, gs, alpha=-lr)
                if wd:
                    torch._foreach_add_(vs, ps, alpha=-lr * wd)
                torch._foreach_add_(ps, vs)
        return loss


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Trainable parameters grouped by learning-rate multiplier: the layer's own (--lr-mult
    fc8=10) times Caffe's bias multiplier, and biases without decay when asked (bias lr x2, no
    decay in bvlc_alexnet). Frozen parameters are left out of the optimiser altogether."""
    layer = {id(p): n for n, m in named_weight_layers(model).items() for p in m.parameters()}
    for flag, mults in (("--lr-mult", cfg.lr_mult), ("--decay-mult", cfg.decay_mult)):
        unknown = sorted(set(mults) - set(layer.values()))
        if unknown:
            raise ValueError(
                f"{flag}: unknown layer(s) {unknown}; layers: {', '.join(sorted(set(layer.values())))}"
            )
    groups: dict[tuple, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # a locally connected layer's biases are (C, H, W): one per output unit, still biases
        bias = name.endswith("bias")
        mult = cfg.lr_mult.get(layer.get(id(p)), 1.0) * (cfg.bias_lr_mult if bias else 1.0)
        # bias_decay=False decays kernels only: no biases, and no normalisation gamma/beta either
        decay = 0.0
        if (p.dim() > 1 and not bias) or cfg.bias_decay:
            decay = cfg.weight_decay * cfg.decay_mult.get(layer.get(id(p)), 1.0)
        group = groups.setdefault((mult, decay), dict(params=[], lr_mult=mult, weight_decay=decay))
        group["params"].append(p)
    return list(groups.values())


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    for g in groups:
        g["lr"] = cfg.lr * g["lr_mult"]
    if cfg.update_rule == "paper":
        return PaperSGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cpu = all(p.device.type == "cpu" for g in groups for p in g["params"])  # fused: 1 pass, not 4
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True if cpu else None
    )


class Schedule:
    """lr = base_lr * lr_mult * factor. `plateau`: factor /= 10 when the validation error has not
    improved for `patience` epochs, at most `max_drops` times (§5); `step`: factor *= gamma every
    `step_size` epochs or iterations; `multistep`: factor *= gamma after each of `milestones`
    (epochs counted from 1); `constant`."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig):
        self.opt, self.cfg = optimizer, cfg
        self.factor, self.best, self.bad_epochs, self.drops = 1.0, float("inf"), 0, 0

    @property
    def lr(self) -> float:
        return self.cfg.lr * self.factor

    def _apply(self) -> None:
        for g in self.opt.param_groups:
            g["lr"] = self.cfg.lr * g.get("lr_mult", 1.0) * self.factor

    def after_step(self, step: int) -> None:
        c = self.cfg
        if c.schedule == "step" and c.step_unit == "iter":
            self.factor = c.gamma ** (step // c.step_size)
            self._apply()

    def after_epoch(self, epoch: int, val_error: float | None) -> bool:
        """Returns True when the learning rate changed."""
        c, before = self.cfg, self.factor
        if c.schedule == "step" and c.step_unit == "epoch":
            self.factor = c.gamma ** ((epoch + 1) // c.step_size)
        elif c.schedule == "multistep":  # torch's MultiStepLR: one drop after each milestone epoch
            self.factor = c.gamma ** sum(epoch + 1 >= m for m in c.milestones)
        elif c.schedule == "plateau" and val_error is not None:
            if val_error < self.best - 1e-9:
                self.best, self.bad_epochs = val_error, 0
            else:
                self.bad_epochs += 1
                if self.bad_epochs >= c.patience and self.drops < c.max_drops:
                    self.factor *= c.gamma
                    self.drops, self.bad_epochs = self.drops + 1, 0
        self._apply()
        return self.factor != before

    def state_dict(self) -> dict:
        return dict(factor=self.factor, best=self.best, bad_epochs=self.bad_epochs, drops=self.drops)

    def load_state_dict(self, state: dict) -> None:
        self.factor, self.best = state["factor"], state["best"]
        self.bad_epochs, self.drops = state["bad_epochs"], state["drops"]
        self._apply()
