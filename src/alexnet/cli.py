"""The `alexnet` command: one entry point, one subcommand per job.

Each subcommand is a function `cmd_<name>(args)`; its parser is built in `build_parser`.
Heavy imports happen inside the commands so that `alexnet --help` is instant.
"""
from __future__ import annotations

import argparse
import sys


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models, model_info

    width = max(map(len, list_models()))
    for name in list_models():
        print(f"{name:<{width}}  {model_info(name).description}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .analysis.summary import format_summary, summarize
    from .models import create_model

    kw = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = create_model(args.model, **kw)
    size = args.input_size or model.input_size
    print(format_summary(summarize(model, size), f"{args.model} at {size}x{size}"))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_data_bench, run_model_bench

    (run_model_bench if args.what == "model" else run_data_bench)(args)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from .data import Decoding, compute_stats, open_dataset, save_stats

    ds = open_dataset(args.data, args.split, Decoding(args.resize or None, args.resize or None),
                      labels_file=args.labels)
    stats = compute_stats(ds, args.batch_size, args.workers)
    stats.update(source=args.data, size=args.resize or None)
    save_stats(stats, args.out)
    ev = ", ".join(f"{v:.4f}" for v in stats["eigval"].tolist())
    mean = ", ".join(f"{v:.4f}" for v in stats["mean"].tolist())
    std = ", ".join(f"{v:.4f}" for v in stats["std"].tolist())
    print(f"{stats['n_images']} images ({stats['skipped']} skipped) -> {args.out}\n"
          f"mean [{mean}]  std [{std}]  eigval [{ev}]  (pixels in [0, 1])")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import prepare

    written = prepare(args.src, args.dst, resize=args.resize, shard_size=args.shard_size,
                      quality=args.quality, labels_file=args.labels, workers=args.workers)
    for split, n in written.items():
        print(f"{split}: {n} images -> {args.dst}/{split}-*.tar")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alexnet", description="AlexNet (NIPS 2012): models, training, "
                                "evaluation, pretrained weights and analysis.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("models", help="list the model zoo with one-line descriptions")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("summary", help="per-layer output shapes, parameters and MACs")
    s.add_argument("model", help="a name from `alexnet models`")
    s.add_argument("--input-size", type=int, default=None, help="square input side (default: the model's)")
    s.add_argument("--num-classes", type=int, default=None)
    s.set_defaults(func=cmd_summary)

    s = sub.add_parser("bench", help="throughput benchmarks")
    bsub = s.add_subparsers(dest="what", required=True, metavar="WHAT")
    b = bsub.add_parser("model", help="img/s of a training or inference step, and GFLOP/s vs GEMM peak")
    b.add_argument("--model", default="alexnet")
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--steps", type=int, default=10, help="timed steps, after --warmup untimed ones")
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--mode", choices=["train", "infer"], default="train")
    b.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    b.add_argument("--channels-last", action="store_true")
    b.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="autocast precision")
    b.add_argument("--compile", action="store_true", help="torch.compile the model")
    b.set_defaults(func=cmd_bench)
    b = bsub.add_parser("data", help="img/s of decode + augmentation vs a naive Pillow loop")
    b.add_argument("--data", required=True, help="a folder, tar shard(s) or dataset name")
    b.add_argument("--split", default="train")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--resize", type=int, default=256, help="shorter side after decoding")
    b.add_argument("--crop", type=int, default=227)
    b.add_argument("--max-images", type=int, default=None)
    b.set_defaults(func=cmd_bench)

    s = sub.add_parser("stats", help="mean image, channel mean/std and RGB eigen-pairs of a training set")
    s.add_argument("--data", required=True)
    s.add_argument("--split", default="train")
    s.add_argument("--labels", default=None, help="labels file for a flat folder (<file> <label>)")
    s.add_argument("--out", required=True, help="where to write the .pt statistics")
    s.add_argument("--resize", type=int, default=256, help="storage size (0: native size, e.g. CIFAR)")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("prepare", help="write a dataset at 256 short side into WebDataset tar shards")
    s.add_argument("src")
    s.add_argument("dst")
    s.add_argument("--resize", type=int, default=256)
    s.add_argument("--shard-size", type=int, default=1000)
    s.add_argument("--quality", type=int, default=95)
    s.add_argument("--labels", default=None)
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=cmd_prepare)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        print(f"alexnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"alexnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
