"""The paper's update (§5) on CPU: milliseconds per step over AlexNet's 61 M parameters, three ways
taken in turns in one process (so that other load falls on all alike):

    fused       what `alexnet train` runs on CPU: one C sweep per tensor (nn/sgd_kernel.c); on
                CUDA the same single pass is a Triton kernel (training/sgd_triton.py)
    multi-op    the four ops, each over all tensors at once (torch._foreach_*): what PaperSGD
                runs where no fused kernel can (another device, dtype or layout)
    four ops    the four torch ops per tensor: what CUDA ran before the Triton kernel

    python benchmarks/update.py [--steps 10] [--threads N]

Wall and CPU time (all threads of the process) per step; GB/s counts the bytes the fused pass
must move (read w, g, v; write v, w: 20 bytes per parameter).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from alexnet.models import create_model
from alexnet.precision import cpu_name
from alexnet.training import optim
from alexnet.training.optim import PaperSGD


def four_ops(params, lr=0.01, mu=0.9, wd=5e-4):
    @torch.no_grad()
    def step():
        for p in params:
            v = four_ops.velocity.setdefault(p, torch.zeros_like(p))
            v.mul_(mu).add_(p.grad, alpha=-lr)
            v.add_(p, alpha=-lr * wd)
            p.add_(v)

    return step


four_ops.velocity = {}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = [p.detach().requires_grad_() for p in create_model("alexnet").parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    n = sum(p.numel() for p in params)
    fused, multi = PaperSGD(params, lr=0.01), PaperSGD(params, lr=0.01)

    def multi_step():
        saved, optim.FUSED = optim.FUSED, {}
        try:
            multi.step()
        finally:
            optim.FUSED = saved

    ways = {"fused": fused.step, "multi-op": multi_step, "four ops": four_ops(params)}
    wall = {k: [] for k in ways}
    cpu = {k: [] for k in ways}
    for i in range(args.steps + 1):
        for name, step in ways.items():
            t, c = time.perf_counter(), time.process_time()
            step()
            if i:  # the first round allocates the velocities
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    print(
        f"# CPU: {cpu_name()}, {args.threads} torch threads, {n / 1e6:.1f} M parameters in {len(params)} "
        f"tensors, median of {args.steps} steps, taken in turns"
    )
    for name in ways:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"{name:<9} {1e3 * w:8.1f} ms/step wall  {1e3 * c:8.1f} ms CPU  {20 * n / w / 1e9:6.1f} GB/s "
            f"({1e3 * min(wall[name]):.1f} ms best)"
        )


if __name__ == "__main__":
    main()
