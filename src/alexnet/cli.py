"""The `alexnet` command: one entry point, one subcommand per job.

Each subcommand is a function `cmd_<name>(args)`; its parser (options, help, example) is built
in cli_parser.py. Heavy imports happen inside the commands.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .cli_parser import build_parser
from .errors import one_line, shown


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models, model_info

    width = max(map(len, list_models()))
    for name in list_models():
        print(f"{name:<{width}}  {model_info(name).description}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .analysis.summary import format_summary, summarize
    from .models import create_model

    import torch

    from .errors import BadInput

    kw = {} if args.num_classes is None else {"num_classes": args.num_classes}
    with torch.device("meta"):  # shapes, parameters and MACs need no memory
        model = create_model(args.model, **kw)
    size = args.input_size or model.input_size
    if not model.accepts(size):
        raise BadInput(f"--input-size {size}: {args.model} takes {model.input_size}x{model.input_size} input "
                       f"(sides {model.sides()} work)")
    print(format_summary(summarize(model, size), f"{args.model} at {size}x{size}"))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_data_bench, run_model_bench

    if args.what == "model":
        from .training.config import check_device

        check_device(args.device)
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


def describe_config(cfg, preset: str | None) -> str:
    """What was resolved, and from where: printed once at the start of a run."""
    from .models import model_info
    from .training.recipes import describe

    recipe = f"preset {preset}" if preset else f"recipe {model_info(cfg.model).recipe} (the default for {cfg.model}; --preset chooses another)"
    lines = [f"alexnet train: {cfg.model} with the {recipe}; settings resolved from (the rest at their defaults):"]
    return "\n".join(lines + [shown(x) for x in describe(cfg.to_dict(), cfg.resolved_from, {})])


def cmd_train(args: argparse.Namespace) -> int:
    import os

    from .errors import BadInput
    from .training import NonFiniteLoss, Stop, build_config, resume, train
    from .training.distributed import resume_command

    flags = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    native = {k: None for k in ("resize", "crop") if flags.get(k) == 0}  # 0: the data's native size
    for k in native:
        del flags[k]
    try:
        if args.force_resume and not args.resume:
            raise BadInput("--force-resume: goes with --resume RUN")
        if args.resume:
            extra = [f for f, given in (("--preset", args.preset), ("--config", args.config),
                                        ("--run-dir", flags.pop("run_dir", None)),
                                        ("--overwrite", args.overwrite)) if given]
            if extra:
                raise BadInput(f"--resume RUN continues RUN in RUN itself; {', '.join(extra)} cannot be "
                               "given with it (to branch a run, copy its folder and resume the copy)")
            summary = resume(args.resume, progress=not args.quiet, steps=args.steps_this_invocation,
                             weights=getattr(args, "weights", None), force=args.force_resume, **flags)
        else:
            zero = " and ".join(f"--{k} 0" for k in native)
            cfg = build_config(args.preset, args.config, flags=flags, values_from=f"{zero} (the data's native size)",
                               **native)
            if os.environ.get("RANK", "0") == "0":
                print(describe_config(cfg, args.preset), file=sys.stderr)
            summary = train(cfg, progress=not args.quiet, overwrite=args.overwrite,
                            steps=args.steps_this_invocation)
    except Stop as s:
        if "start-up" in str(s):
            print(f"alexnet train: stopped by {s}; nothing was trained", file=sys.stderr)
        return 128 + s.signum
    except NonFiniteLoss as e:
        print(f"alexnet train: {e}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") != "0":
        return 0  # rank 0 reports for all
    if not summary["finished"]:
        print(f"paused at epoch {summary['epochs'] + 1} step {summary['steps']}; continue with: "
              f"{resume_command(Path(summary['run_dir']))}")
        return 0
    best = summary["best_val_top1_err"]
    print(f"done: {summary['epochs']} epochs, {summary['steps']} steps, best val top-1 error "
          f"{'n/a' if best is None else f'{best:.2%}'} -> {summary['run_dir']}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from .interop.pretrained import load_pretrained

    if args.all and args.train_layers:
        raise ValueError("give --train-layers or --all, not both")
    if args.resume:  # the checkpoint holds the weights, layers and multipliers of the run
        if args.train_layers or args.all or args.lr_mult:
            raise ValueError("--resume keeps the run's recipe; --train-layers, --all and --lr-mult "
                             "cannot be given with it")
        return cmd_train(args)  # --weights, if given, must be the run's own (checked by resume)
    if not args.weights:
        from .errors import BadInput

        raise BadInput("--weights: required (the pretrained weights to start from), unless --resume RUN")
    _, card = load_pretrained(args.weights)  # the new data is decoded as the weights expect
    if args.cfg_resize is None:
        args.cfg_resize = card.resize or card.input_size
    args.cfg_init_from = args.weights
    args.cfg_train_layers = "all" if args.all or not args.train_layers else args.train_layers
    args.cfg_lr_mult = dict(args.lr_mult or []) or None
    args.cfg_model = card.model
    return cmd_train(args)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate
    from .jsonio import dumps

    r = evaluate(args.weights, args.data, args.crops, args.ensemble, args.split, args.labels,
                 args.batch_size, args.workers, args.device, args.out, progress=not args.json)
    if args.json:
        print(dumps(r))
    else:
        print(f"{r['images']} images, {len(r['models'])} model(s), {r['crops']} crop(s): top-1 error "
              f"{r['top1_err']:.2%}, top-5 error {r['top5_err']:.2%}"
              + (f", {r['skipped']} file(s) skipped" if r["skipped"] else "")
              + (f"; per-class accuracy and confusion matrix in {r['out_dir']}" if r.get("out_dir") else ""))
    return 0


PLOT_MAX = 32  # images in `predict --plot`'s figure


def cmd_predict(args: argparse.Namespace) -> int:
    from .evaluation.predict import predict

    if args.plot:
        from .analysis.figures import check_out

        check_out(args.plot, "--plot")
    results, card = predict(args.images, args.weights, args.labels, args.topk, args.crops, args.model,
                            progress=not args.quiet)
    for path, top, _ in results:  # file and class names are strangers' text: shown escaped
        print(shown(path))
        for label, p in top:
            print(f"  {p:7.2%}  {shown(label)}")
    if args.plot:
        from .analysis.figures import prediction_grid

        few = results[:PLOT_MAX]  # a figure of thousands of images helps nobody (and takes GBs)
        out = prediction_grid([img for _, _, img in few], [t for _, t, _ in few], args.plot,
                              [Path(p).name for p, _, _ in few])
        more = f" (the first {PLOT_MAX} of {len(results)} images)" if len(results) > PLOT_MAX else ""
        print(f"figure -> {out}{more}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from .interop.hub import format_table, resolve

    from .errors import BadInput
    from .interop.hub import WEIGHTS

    unknown = [n for n in args.download or [] if n not in WEIGHTS]
    if unknown:
        raise BadInput(f"--download {unknown[0]!r}: not a name from `alexnet weights` ({', '.join(WEIGHTS)})")
    for name in args.download or []:
        print(f"{name}: {resolve(name)}")
    print(format_table())
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .interop.pretrained import load_pretrained, save_pretrained

    model, card = load_pretrained(args.src, args.model, args.labels, mean=args.mean)
    out = save_pretrained(model, card, args.dst)
    print(f"{args.src}{f' ({shown(card.source)})' if card.source else ''} -> {out} as {card.model}: {card.channel_order}, pixels x"
          f"{card.pixel_scale:g}, input {card.input_size}, {card.num_classes} classes")
    return 0


def _one_line_warning(command: str):
    """Warnings as one line ("alexnet predict: warning: skipping x.jpg: ..."), without the source
    line Python adds (forked loader workers inherit it)."""
    def fmt(message, category, filename, lineno, line=None):
        # escaped, not folded: a file name with a newline in it stays recognisable (and one line)
        text = shown(str(message).strip()) or category.__name__
        return f"alexnet {command}: warning: {text if len(text) <= 2000 else text[:1997] + '...'}\n"
    return fmt


def main(argv: list[str] | None = None) -> int:
    from .errors import classify, debug_enabled

    argv = list(sys.argv[1:] if argv is None else argv)
    if hasattr(sys.stdout, "reconfigure"):  # file names that are not UTF-8 print as their bytes, as ls does
        try:
            sys.stdout.reconfigure(errors="surrogateescape")
        except (ValueError, OSError):
            pass
    debug = "--debug" in argv or debug_enabled()
    follow = "--follow-symlinks" in argv  # anywhere, like --debug; read by the data sources
    argv = [a for a in argv if a not in ("--debug", "--follow-symlinks")]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a usage error (one line, status 2), --help or --version (0)
        return e.code if isinstance(e.code, int) else 2
    import warnings

    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning(args.command)
    saved = os.environ.get("ALEXNET_FOLLOW_SYMLINKS")
    if follow:
        os.environ["ALEXNET_FOLLOW_SYMLINKS"] = "1"
    try:
        with warnings.catch_warnings():  # the filters as they were, after this command
            warnings.filterwarnings("always", message="skipping")  # every skipped file, not one per line
            return args.func(args)
    except KeyboardInterrupt:
        print(f"alexnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every error becomes one line (2: bad input, 1: run time)
        if debug:  # the traceback too, and the same exit status as without --debug
            import traceback

            traceback.print_exc()
        status, msg = classify(e)
        print(f"alexnet {args.command}: error: {one_line(msg)}", file=sys.stderr)
        return status
    finally:
        warnings.formatwarning = formatwarning
        if follow and saved is None:
            del os.environ["ALEXNET_FOLLOW_SYMLINKS"]
        elif follow:
            os.environ["ALEXNET_FOLLOW_SYMLINKS"] = saved


if __name__ == "__main__":
    raise SystemExit(main())
