"""Forward + backward time of cuda-convnet's locally connected layers (local3: 64 -> 32 maps,
local4: 32 -> 32, both 6x6, 3x3 filters, padding 1; batch 128, channels_last as training runs
them) done four ways, run alternately in one process: stacked slices + one batched matmul over
positions (nn/local.py), F.unfold + the same matmul, F.unfold + einsum, and a loop of one matmul
per position. Prints ms per batch; judge by the ratios (shared CPUs are noisy).

    python benchmarks/local_layer.py [--threads 1] [--repeats 30]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from alexnet.nn.local import LocallyConnected2d
from alexnet.precision import cpu_name


def unfold_forward(m: LocallyConnected2d, x: torch.Tensor) -> torch.Tensor:
    cols = F.unfold(x, m.kernel_size, padding=m.padding, stride=m.stride)  # (N, Ckk, L)
    out = torch.bmm(cols.permute(2, 0, 1), m.weight)  # (L, N, F)
    return out.permute(1, 2, 0).reshape(x.shape[0], m.out_channels, m.out_size, m.out_size) + m.bias


def einsum_forward(m: LocallyConnected2d, x: torch.Tensor) -> torch.Tensor:
    cols = F.unfold(x, m.kernel_size, padding=m.padding, stride=m.stride)  # (N, Ckk, L)
    out = torch.einsum("ncl,lcf->nfl", cols, m.weight)
    return out.reshape(x.shape[0], m.out_channels, m.out_size, m.out_size) + m.bias


def loop_forward(m: LocallyConnected2d, x: torch.Tensor) -> torch.Tensor:
    cols = F.unfold(x, m.kernel_size, padding=m.padding, stride=m.stride)
    out = torch.stack([cols[:, :, p] @ m.weight[p] for p in range(cols.shape[2])], dim=2)
    return out.reshape(x.shape[0], m.out_channels, m.out_size, m.out_size) + m.bias


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}, torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}")
    for name, cin in (("local3", 64), ("local4", 32)):
        m = LocallyConnected2d(cin, 32, 6, 3, padding=1)
        x = torch.randn(args.batch, cin, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
        ways = {
            "slices+bmm": m,
            "unfold+bmm": lambda t, m=m: unfold_forward(m, t),
            "unfold+einsum": lambda t, m=m: einsum_forward(m, t),
            "per-position loop": lambda t, m=m: loop_forward(m, t),
        }
        times = {k: [] for k in ways}
        for r in range(args.repeats + 2):
            for k, f in ways.items():
                t0 = time.perf_counter()
                f(x).square().sum().backward()
                if r >= 2:
                    times[k].append(time.perf_counter() - t0)
        base = min(times["slices+bmm"])
        for k, ts in times.items():
            print(
                f"{name}  {k:18s} fwd+bwd {1e3 * min(ts):7.2f} ms (best of {args.repeats})  "
                f"x{min(ts) / base:.2f} of slices+bmm"
            )


if __name__ == "__main__":
    main()
