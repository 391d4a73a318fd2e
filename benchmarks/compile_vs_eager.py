"""torch.compile against eager for our `alexnet` training step, interleaved step by step in one
process (so machine drifts fall on both alike): the measurement behind `--compile`'s default.

    python benchmarks/compile_vs_eager.py [--device cpu] [--batch-size 64] [--steps 8]
                                          [--precisions fp32 bf16] [--modes default]

--modes takes torch.compile modes: default, reduce-overhead (CUDA graphs via cudagraph trees),
max-autotune. Prints img/s (median), the ratio compiled / eager, and the compile time (the first
step's extra seconds).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from alexnet import create_model
from alexnet.bench import BenchConfig, prepare, sync, time_interleaved
from alexnet.precision import cpu_name
from alexnet.runtime import tune_allocator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="alexnet")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--modes", nargs="+", default=["default"])
    args = p.parse_args()
    tune_allocator()
    device = torch.device(args.device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()}, {torch.get_num_threads()} threads"
    )
    print(
        f"# torch {torch.__version__}, {where}, {args.model} train step, batch {args.batch_size}, "
        f"channels_last, median of {args.steps} interleaved steps after {args.warmup} warm-up"
    )
    print("| precision | mode | img/s | compiled / eager | compile s |")
    print("|---|---|---|---|---|")
    for precision in args.precisions:
        cfg = BenchConfig(
            args.model,
            args.batch_size,
            args.steps,
            args.warmup,
            "train",
            args.device,
            channels_last=True,
            precision=precision,
        )
        steps, first = {"eager": prepare(create_model(args.model, seed=0), cfg)[1]}, {}
        for mode in args.modes:
            model = torch.compile(create_model(args.model, seed=0), mode=None if mode == "default" else mode)
            steps[mode] = prepare(model, cfg)[1]
        for name, step in steps.items():  # the first call compiles: timed apart
            sync(device)
            t = time.perf_counter()
            step()
            sync(device)
            first[name] = time.perf_counter() - t
        times = time_interleaved(steps, cfg)
        rate = {k: args.batch_size / statistics.median(v) for k, v in times.items()}
        for name in steps:
            extra = first[name] - statistics.median(times[name])
            print(
                f"| {precision} | {name} | {rate[name]:.1f} | {rate[name] / rate['eager']:.2f}x | "
                f"{extra:.1f} |"
                if name != "eager"
                else f"| {precision} | eager | {rate[name]:.1f} | 1.00x | - |",
                flush=True,
            )


if __name__ == "__main__":
    main()
