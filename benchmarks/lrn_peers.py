"""Our `alexnet` against the same network built from torch.nn.LocalResponseNorm, and without
LRN, in one process, interleaved step by step (issue: the faithful net as fast as the unfaithful).

    python benchmarks/lrn_peers.py [--batch-sizes 64] [--modes train infer] [--steps 8]
                                   [--infer-batch-sizes 1 64] [--no-malloc-tuning]

Prints one row per (mode, batch, model) with img/s and the ratio ours / that row. "CL" rows run
in channels_last memory format, as ours does.
"""
from __future__ import annotations

import argparse
import copy
import statistics

import torch
from torch import nn

from alexnet import create_model
from alexnet.bench import BenchConfig, flops_per_image, gemm_peak, prepare, time_interleaved
from alexnet.runtime import tune_allocator


def peers(seed: int = 0) -> dict[str, nn.Module]:
    ours = create_model("alexnet", seed=seed)
    torch_lrn, no_lrn = copy.deepcopy(ours), copy.deepcopy(ours)
    for name in ("norm1", "norm2"):
        ref = getattr(ours.features, name)
        # torch divides alpha by n (Caffe's convention): scale it so the function is the paper's
        setattr(torch_lrn.features, name, nn.LocalResponseNorm(ref.size, ref.alpha * ref.size, ref.beta, ref.k))
        setattr(no_lrn.features, name, nn.Identity())
    with torch.no_grad():  # same function, checked before anything is timed
        x = torch.randn(2, 3, 227, 227) * 50
        a, b = ours.eval()(x), torch_lrn.eval()(x)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * a.abs().max().item())
    return {"alexnet": ours, "torch-lrn": torch_lrn, "no-lrn": no_lrn}


# Ours runs as `alexnet train`/`bench --channels-last` run it; the peers as usually written
# (NCHW), and again in channels_last so that the LRN implementations compare on equal footing.
LINEUP = [("alexnet", "alexnet", True), ("torch-lrn", "torch-lrn", False), ("no-lrn", "no-lrn", False),
          ("torch-lrn", "torch-lrn CL", True), ("no-lrn", "no-lrn CL", True)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-batch-sizes", type=int, nargs="+", default=[64])
    p.add_argument("--infer-batch-sizes", type=int, nargs="+", default=[1, 64])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-malloc-tuning", action="store_true")
    args = p.parse_args()
    tuned = False if args.no_malloc_tuning else tune_allocator()
    peak = gemm_peak(torch.device("cpu"))
    print(f"# torch {torch.__version__}, CPU, {torch.get_num_threads()} threads, fp32, "
          f"malloc tuning {'on' if tuned else 'off'}")
    runs = [("train", b) for b in args.train_batch_sizes] + [("infer", b) for b in args.infer_batch_sizes]
    results = []  # (mode, batch, {label: img/s}, GFLOP per image)
    for mode, batch in runs:
        cfg = BenchConfig(batch_size=batch, steps=args.steps, warmup=args.warmup, mode=mode)
        steps = {}
        for kind, label, channels_last in LINEUP:
            cfg.channels_last = channels_last
            steps[label] = prepare(peers()[kind], cfg)[1]
        times = time_interleaved(steps, cfg)
        peak = max(peak, gemm_peak(torch.device("cpu")))  # a busy moment lowers one measurement
        results.append((mode, batch, {k: batch / statistics.median(v) for k, v in times.items()},
                        flops_per_image(create_model("alexnet"), mode) / 1e9))
    print(f"# GEMM peak {peak:.0f} GFLOP/s (best square matmul, before and after each group)")
    print("| mode | batch | model | img/s | ms/step | % GEMM peak | ours / this |")
    print("|---|---|---|---|---|---|---|")
    for mode, batch, ips, gflop in results:
        for name, rate in ips.items():
            print(f"| {mode} | {batch} | {name} | {rate:.1f} | {1e3 * batch / rate:.1f} | "
                  f"{100 * gflop * rate / peak:.0f} % | {ips['alexnet'] / rate:.2f}x |")


if __name__ == "__main__":
    main()
