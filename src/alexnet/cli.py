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
