"""`alexnet train`: one flag per training setting, and the run that the settings make.

Every TrainConfig field is an option (dest `cfg_<field>`, help from training/options.py), so a
setting is written once, in the dataclass; `settings(args)` turns the given ones back into
config keys. finetune.py reuses these options and `start`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from ..errors import BadInput, shown
from ..models import model_info
from ..training import NonFiniteLoss, Stop, build_config, resume, train
from ..training.config import CHOICES, NOT_SETTINGS, PRESETS, TrainConfig
from ..training.distributed import resume_command
from ..training.options import GROUPS, HELP
from ..training.recipes import describe
from . import argtypes as T
from .options import add, command, quiet, with_default

PREFIX = "cfg_"  # the dest of a setting's flag: apart from the options of the invocation


def register(sub) -> None:
    s = command(
        sub,
        "train",
        "train a network (paper §5 recipe and presets); resumable",
        "Train a network from scratch with the paper's recipe (§5) or another preset. Every setting\n"
        "is an option, a config-file key, or comes from the recipe; the run folder is resumable.",
        "alexnet train --preset cifar10-quick --data /path/to/cifar10-jpeg.tar --run-dir runs/quick",
        run,
    )
    recipe_options(s, "the model's own recipe (paper for alexnet)")
    invocation_options(s)
    setting_options(s)


def run(args) -> int:
    return start(args, settings(args))


def recipe_options(p: argparse.ArgumentParser, preset_default: str) -> None:
    g = p.add_argument_group("recipe (where the settings you do not give come from)")
    add(
        g,
        "--preset",
        default=None,
        choices=list(PRESETS),
        default_text=preset_default,
        help="a training recipe: paper (§5), caffe (bvlc_alexnet's solver), owt (torchvision's), "
        "d2l, keras-bn, cifar10-quick (a four-layer CIFAR-10 net, minutes on a CPU) or cuda-convnet "
        "(§3.3's CIFAR-10 nets as cuda-convnet trains them, hours)",
    )
    add(
        g,
        "--config",
        default=None,
        metavar="FILE",
        default_text="none",
        help="a YAML or JSON file of settings (the keys are the option names below, with _ for -); "
        "options given on the command line win",
    )


def invocation_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("this invocation (not settings of the run)")
    add(
        g,
        "--resume",
        default=None,
        metavar="RUN",
        default_text="a new run",
        help="continue RUN/last.pt exactly, writing into RUN only; the run's limits are kept unless "
        "given again (--epochs, --max-steps, ...)",
    )
    add(
        g,
        "--force-resume",
        action="store_true",
        help="with --resume: continue RUN/last.pt even where RUN/config.yaml says otherwise (edited, or "
        "last.pt copied from another run); config.yaml is rewritten from last.pt",
    )
    add(
        g,
        "--overwrite",
        action="store_true",
        help="start a new run in a --run-dir that holds one, removing that run's files",
    )
    add(
        g,
        "--steps-this-invocation",
        type=T.COUNT,
        default=None,
        metavar="N",
        default_text="no limit",
        help="train at most N steps now, then save last.pt and exit 0 (--resume continues); not "
        "stored with the run, unlike --max-steps",
    )
    quiet(g)


def help_line(name: str, default: object) -> str:
    """A setting's text, then its default and the presets that set another value."""
    _, text = HELP[name]
    others = [
        f"{p} {v}"
        for p, v in PRESETS.items()
        if name in PRESETS[p] and PRESETS[p][name] != default
        for v in [PRESETS[p][name]]
    ]
    extra = f"; recipes: {', '.join(others)}" if others else ""
    return with_default(text, default) + extra.replace("%", "%%")


def setting_options(p: argparse.ArgumentParser, skip: tuple = ()) -> None:
    """One flag per TrainConfig field but those in `skip`, in the groups of training/options.py;
    default None: a setting not given comes from the recipe, the file or the dataclass."""
    groups = {g: p.add_argument_group(f"{g} settings (also config-file keys)") for g in GROUPS}
    for f in dataclasses.fields(TrainConfig):
        if f.name in NOT_SETTINGS or f.name in skip:
            continue
        flag, dest = "--" + f.name.replace("_", "-"), PREFIX + f.name
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        g = groups[HELP[f.name][0]]
        text = help_line(f.name, default)
        if isinstance(default, bool):
            g.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif isinstance(default, dict):
            g.add_argument(flag, dest=dest, type=T.json_object, default=None, metavar="JSON", help=text)
        elif f.name == "std":
            g.add_argument(
                flag, dest=dest, type=float, nargs=3, default=None, metavar=("R", "G", "B"), help=text
            )
        elif f.name == "milestones":
            g.add_argument(flag, dest=dest, type=int, nargs="+", default=None, metavar="EPOCH", help=text)
        else:
            kind = {int: int, float: float}.get(type(default), str)
            if "int" in str(f.type):
                kind = int
            elif "float" in str(f.type):
                kind = float
            metavar = {int: "N", float: "X"}.get(kind, f.name.upper())
            if f.name == "workers":  # a number or auto
                kind, metavar = T.workers_or_auto, "N"
            g.add_argument(
                flag,
                dest=dest,
                type=kind,
                default=None,
                help=text,
                choices=CHOICES.get(f.name),
                metavar=metavar if f.name not in CHOICES else None,
            )


def settings(args) -> dict:
    """{config key: value} of the setting flags given on the command line."""
    return {k[len(PREFIX) :]: v for k, v in vars(args).items() if k.startswith(PREFIX) and v is not None}


def describe_config(cfg: TrainConfig, preset: str | None) -> str:
    """What was resolved, and from where: printed once at the start of a run."""
    recipe = (
        f"preset {preset}"
        if preset
        else f"recipe {model_info(cfg.model).recipe} (the default for {cfg.model}; --preset chooses another)"
    )
    lines = [
        f"alexnet train: {cfg.model} with the {recipe}; settings resolved from (the rest at their defaults):"
    ]
    # values from a config file are strangers' text: shown escaped
    return "\n".join(lines + [shown(x) for x in describe(cfg.to_dict(), cfg.resolved_from, {})])


def start(args, flags: dict, weights: str | None = None) -> int:
    """A new run with `flags` (config keys) over the recipe and --config, or --resume's run with
    them as changes; `weights`: finetune's --weights, which must be the resumed run's own."""
    native = {k: None for k in ("resize", "crop") if flags.get(k) == 0}  # 0: the data's native size
    flags = {k: v for k, v in flags.items() if k not in native}
    try:
        if args.force_resume and not args.resume:
            raise BadInput("--force-resume: goes with --resume RUN")
        if args.resume:
            extra = [
                f
                for f, given in (
                    ("--preset", args.preset),
                    ("--config", args.config),
                    ("--run-dir", flags.pop("run_dir", None)),
                    ("--overwrite", args.overwrite),
                )
                if given
            ]
            if extra:
                raise BadInput(
                    f"--resume RUN continues RUN in RUN itself; {', '.join(extra)} cannot be "
                    "given with it (to branch a run, copy its folder and resume the copy)"
                )
            summary = resume(
                args.resume,
                progress=not args.quiet,
                steps=args.steps_this_invocation,
                weights=weights,
                force=args.force_resume,
                **flags,
            )
        else:
            zero = " and ".join(f"--{k} 0" for k in native)
            cfg = build_config(
                args.preset,
                args.config,
                flags=flags,
                values_from=f"{zero} (the data's native size)",
                **native,
            )
            if os.environ.get("RANK", "0") == "0":
                print(describe_config(cfg, args.preset), file=sys.stderr)
            summary = train(
                cfg, progress=not args.quiet, overwrite=args.overwrite, steps=args.steps_this_invocation
            )
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
        print(
            f"paused at epoch {summary['epochs'] + 1} step {summary['steps']}; continue with: "
            f"{resume_command(Path(summary['run_dir']))}"
        )
        return 0
    best = summary["best_val_top1_err"]
    print(
        f"done: {summary['epochs']} epochs, {summary['steps']} steps, best val top-1 error "
        f"{'n/a' if best is None else f'{best:.2%}'} -> {summary['run_dir']}"
    )
    return 0
