"""A hand-written training loop against `alexnet train`'s step, side by side (issue 19).

    python benchmarks/user_loop.py [--model alexnet] [--batch-size 64] [--steps 8] [--rounds 3]
                                   [--precision auto|fp32|bf16]

Each variant runs in its own process (the allocator setting is process-wide), the variants taking
turns round after round so that the machine's other load falls on all of them alike; the medians
are printed with the CPU they ran on. Images per CPU-second (user + system time of the process)
compare the variants on a machine that other work shares, where wall-clock rates swing.

    user          what a timm user writes: alexnet.create_model, torch.optim.SGD (momentum 0.9,
                  weight decay 5e-4), autocast, cross-entropy, backward, step; random images
    user+tune     the same after `alexnet.tune_allocator()`, the call docs/guide.md gives
    user+tune+cl  ... and `model.to(memory_format=torch.channels_last)` (the batches stay NCHW:
                  the first convolution's output follows the weights' layout)
    user+tune+cl+fused  ... and torch.optim.SGD(..., fused=True): one kernel for the update
    train         `alexnet train`'s step (alexnet.bench.prepare: the paper's update rule with its
                  fused C kernel, channels_last batches, allocator tuned): what `alexnet bench
                  model --channels-last` times
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("user", "user+tune", "user+tune+cl", "user+tune+cl+fused", "train")


def worker(variant: str, model_name: str, batch: int, steps: int, precision: str) -> dict:
    import torch
    import torch.nn.functional as F

    import alexnet
    from alexnet.precision import autocast

    if variant != "user":
        alexnet.tune_allocator()
    model = alexnet.create_model(model_name, seed=0)
    x = torch.randn(batch, model.in_channels, model.input_size, model.input_size)
    y = torch.randint(0, model.num_classes, (batch,))
    if variant == "train":
        from alexnet.bench import BenchConfig, prepare

        _, step = prepare(model, BenchConfig(model_name, batch, channels_last=True, precision=precision))
    else:
        if "cl" in variant.split("+"):
            model = model.to(memory_format=torch.channels_last)
        model.train()
        opt = torch.optim.SGD(
            model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, fused="fused" in variant or None
        )
        amp = autocast(precision, "cpu")

        def step():
            with amp:
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    step()  # warm-up: first-touch allocations, kernel selection
    step()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    secs, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return {
        "img_s": batch * steps / secs,
        "img_cpu_s": batch * steps / cpu,
        "sys_s": r1.ru_stime - r0.ru_stime,
        "faults": r1.ru_minflt - r0.ru_minflt,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="alexnet")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from alexnet.precision import describe_cpu, resolve_precision

    precision, why = resolve_precision(args.precision, "cpu")
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.batch_size, args.steps, precision)))
        return
    runs: dict[str, list[dict]] = {v: [] for v in args.variants}
    for r in range(args.rounds):
        for v in args.variants:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                v,
                "--model",
                args.model,
                "--batch-size",
                str(args.batch_size),
                "--steps",
                str(args.steps),
                "--precision",
                precision,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs[v].append(json.loads(out.strip().splitlines()[-1]))
            print(
                f"  round {r + 1} {v:<18} {runs[v][-1]['img_s']:7.1f} img/s, "
                f"{runs[v][-1]['img_cpu_s']:6.2f} img per CPU-second",
                flush=True,
            )
    print(
        f"# CPU: {describe_cpu()}; {args.model}, batch {args.batch_size}, {precision} ({why}), "
        f"{args.steps} timed steps per process, median of {args.rounds} processes each"
    )
    base = {
        k: statistics.median(r[k] for r in runs.get("train", runs[args.variants[0]]))
        for k in ("img_s", "img_cpu_s")
    }
    for v, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(
            f"{v:<18} {med['img_s']:7.1f} img/s ({med['img_s'] / base['img_s']:4.2f} x train's step), "
            f"{med['img_cpu_s']:6.2f} img per CPU-second ({med['img_cpu_s'] / base['img_cpu_s']:4.2f} x), "
            f"system CPU {med['sys_s']:5.2f} s and {med['faults'] / 1e3:5.0f} k page faults per {args.steps} steps"
        )


if __name__ == "__main__":
    main()
