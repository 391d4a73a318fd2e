"""Our `alexnet` against the same network built from torch.nn.LocalResponseNorm, and without
LRN, in fp32 and bf16 autocast, in one process, interleaved step by step (the faithful net as
fast as the unfaithful, and bf16 a real speed-up).

    python benchmarks/lrn_peers.py [--rounds 5] [--steps 3] [--batch 64] [--modes train]
                                   [--precisions fp32 bf16] [--peers all|no-lrn]
                                   [--no-malloc-tuning]

Every entry (model x precision) takes one step in turn; a round is `--steps` such turns plus
one untimed warm-up turn, and a ratio is computed per round (from each entry's median step)
and reported as the median over rounds with its range, so that the load of a shared machine
falls on all entries alike. "CL" entries run in channels_last like ours; "no-lrn CL" is the
like-for-like yardstick. Peaks are the best of the network's own conv/fc layers run alone (and a
square GEMM), per precision, in channels_last, measured before and after.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics

import torch
from torch import nn

from alexnet import create_model
from alexnet.bench import BenchConfig, flops_per_image, kernel_peak, machine_line, prepare, time_interleaved
from alexnet.runtime import tune_allocator


def peers(seed: int = 0) -> dict[str, nn.Module]:
    ours = create_model("alexnet", seed=seed)
    torch_lrn, no_lrn = copy.deepcopy(ours), copy.deepcopy(ours)
    for name in ("norm1", "norm2"):
        ref = getattr(ours.features, name)
        # torch divides alpha by n (Caffe's convention): scale it so the function is the paper's
        setattr(
            torch_lrn.features, name, nn.LocalResponseNorm(ref.size, ref.alpha * ref.size, ref.beta, ref.k)
        )
        setattr(no_lrn.features, name, nn.Identity())
    with torch.no_grad():  # same function, checked before anything is timed
        x = torch.randn(2, 3, 227, 227) * 50
        a, b = ours.eval()(x), torch_lrn.eval()(x)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * a.abs().max().item())
    return {"alexnet": ours, "torch-lrn": torch_lrn, "no-lrn": no_lrn}


# Ours runs as `alexnet train` runs it (channels_last); the peers as usually written (NCHW), and
# again in channels_last so that the LRN implementations compare on equal footing.
LINEUP = [
    ("alexnet", "alexnet", True),
    ("no-lrn", "no-lrn CL", True),
    ("torch-lrn", "torch-lrn CL", True),
    ("torch-lrn", "torch-lrn", False),
    ("no-lrn", "no-lrn", False),
]


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--modes", nargs="+", choices=["train", "infer"], default=["train"])
    p.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    p.add_argument(
        "--peers",
        choices=["all", "no-lrn"],
        default="all",
        help="no-lrn: only ours and no-lrn CL (the ratios that have targets), faster",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="timed turns per round")
    p.add_argument("--no-malloc-tuning", action="store_true")
    args = p.parse_args()
    tuned = False if args.no_malloc_tuning else tune_allocator()
    lineup = LINEUP[:2] if args.peers == "no-lrn" else LINEUP
    print(machine_line(torch.device("cpu")))
    print(
        f"# torch {torch.__version__}, batch {args.batch}, malloc tuning {'on' if tuned else 'off'}, "
        f"{args.rounds} rounds x {args.steps} interleaved steps (+1 warm-up); {load()} before"
    )
    for mode in args.modes:
        cfgs = {
            prec: BenchConfig(batch_size=args.batch, mode=mode, channels_last=True, precision=prec)
            for prec in args.precisions
        }
        peak = {prec: kernel_peak(create_model("alexnet"), cfg) for prec, cfg in cfgs.items()}
        steps = {}
        for prec in args.precisions:
            for kind, label, channels_last in lineup:
                cfg = copy.copy(cfgs[prec])
                cfg.channels_last = channels_last
                steps[(label, prec)] = prepare(peers()[kind], cfg)[1]
        rounds = []  # per round: {(label, prec): median seconds}
        for _ in range(args.rounds):
            times = time_interleaved(steps, BenchConfig(steps=args.steps, warmup=1))
            rounds.append({k: statistics.median(v) for k, v in times.items()})
        for prec, cfg in cfgs.items():  # before and after: a busy moment lowers one of them
            peak[prec] = max(peak[prec], kernel_peak(create_model("alexnet"), cfg))
        gflop = flops_per_image(create_model("alexnet"), mode) / 1e9
        print(f"\n## {mode}, batch {args.batch} ({load()} after)")
        print(
            "# peaks: " + ", ".join(f"{prec} {v:.0f} GFLOP/s ({which})" for prec, (v, which) in peak.items())
        )
        print("| precision | model | img/s | ms/step | % of peak | ours / this |")
        print("|---|---|---|---|---|---|")
        for prec in args.precisions:
            for _, label, _ in lineup:
                secs = statistics.median(r[(label, prec)] for r in rounds)
                ratios = [r[(label, prec)] / r[("alexnet", prec)] for r in rounds]
                print(
                    f"| {prec} | {label} | {args.batch / secs:.1f} | {1e3 * secs:.0f} | "
                    f"{100 * gflop * args.batch / secs / peak[prec][0]:.0f} % | {spread(ratios)} |"
                )
        print("\nratios, median over rounds [range]:")
        for prec in args.precisions:
            ours_vs = [r[("no-lrn CL", prec)] / r[("alexnet", prec)] for r in rounds]
            print(f"  {prec}: ours / no-lrn CL (img/s)       {spread(ours_vs)}")
        if {"fp32", "bf16"} <= set(args.precisions):
            for label in ("alexnet", "no-lrn CL"):
                gain = [r[(label, "fp32")] / r[(label, "bf16")] for r in rounds]
                print(f"  {label}: bf16 / fp32 (img/s)    {spread(gain)}")


if __name__ == "__main__":
    main()
