"""The `alexnet` command line: every subcommand's options, help lines, groups and example.

Each option's help is one line ending in its default ("... Default: X", as `train --help` prints
its settings), with the paper section where the option follows the paper. docs/cli.md is these
parsers' --help output, regenerated and checked by tests/test_cli_doc.py.
"""
from __future__ import annotations

import argparse

from . import argtypes as T

VALUE_ACTIONS = (None, "store", "append", "extend")  # actions that take a value, so have a default


def add(p, *flags: str, help: str, default_text: str | None = None, **kw) -> argparse.Action:
    """add_argument, with "Default: X" appended to the help of every optional option that takes a
    value (X: `default_text`, else the default itself), so that no default is written twice;
    "(required)" to the required ones."""
    from .training.options import with_default

    if kw.get("required"):
        help = f"{help} (required)".replace("%", "%%")
    elif flags[0].startswith("-") and kw.get("action") in VALUE_ACTIONS:
        default = kw.get("default")
        shown = default_text if default_text is not None else " ".join(map(str, default)) \
            if isinstance(default, list) else default
        help = with_default(help, shown)
    else:
        help = help.replace("%", "%%")
    return p.add_argument(*flags, help=help, **kw)


def command(sub, name: str, help: str, description: str, example: str, func=None):
    """A subcommand's parser: its line in the parent's list, a description and one example."""
    s = sub.add_parser(name, help=help, description=description, epilog=f"example:\n  {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    if func is not None:
        s.set_defaults(func=func)
    return s


def _run_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("this invocation (not settings of the run)")
    add(g, "--resume", default=None, metavar="RUN", default_text="a new run",
        help="continue RUN/last.pt exactly, writing into RUN only; the run's limits are kept unless "
             "given again (--epochs, --max-steps, ...)")
    add(g, "--force-resume", action="store_true",
        help="with --resume: continue RUN/last.pt even where RUN/config.yaml says otherwise (edited, or "
             "last.pt copied from another run); config.yaml is rewritten from last.pt")
    add(g, "--overwrite", action="store_true",
        help="start a new run in a --run-dir that holds one, removing that run's files")
    add(g, "--steps-this-invocation", type=T.COUNT, default=None, metavar="N", default_text="no limit",
        help="train at most N steps now, then save last.pt and exit 0 (--resume continues); not "
             "stored with the run, unlike --max-steps")
    add(g, "--quiet", action="store_true", help="no progress bars")


def _recipe_flags(p: argparse.ArgumentParser, preset_default: str) -> None:
    from .training.config import PRESETS

    g = p.add_argument_group("recipe (where the settings you do not give come from)")
    add(g, "--preset", default=None, choices=list(PRESETS), default_text=preset_default,
        help="a training recipe: paper (§5), caffe (bvlc_alexnet's solver), owt (torchvision's), "
             "d2l, keras-bn or cifar10-quick (the Fig. 1 net on CIFAR-10, minutes on a CPU)")
    add(g, "--config", default=None, metavar="FILE", default_text="none",
        help="a YAML or JSON file of settings (the keys are the option names below, with _ for -); "
             "options given on the command line win")


def _config_flags(p: argparse.ArgumentParser, skip: tuple = ()) -> None:
    """One flag per TrainConfig field (dest cfg_<name>), so the config is written once; help
    lines and groups from training/options.py."""
    import dataclasses

    from .training.config import CHOICES, NOT_SETTINGS, PRESETS, TrainConfig
    from .training.options import GROUPS, HELP, help_line

    groups = {g: p.add_argument_group(f"{g} settings (also config-file keys)") for g in GROUPS}
    for f in dataclasses.fields(TrainConfig):
        if f.name in NOT_SETTINGS:
            continue
        if f.name in skip:
            p.set_defaults(**{"cfg_" + f.name: None})
            continue
        flag, dest = "--" + f.name.replace("_", "-"), "cfg_" + f.name
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        g = groups[HELP[f.name][0]]
        text = help_line(f.name, default, PRESETS)
        if isinstance(default, bool):
            g.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif isinstance(default, dict):
            g.add_argument(flag, dest=dest, type=T.json_object, default=None, metavar="JSON", help=text)
        elif f.name == "std":
            g.add_argument(flag, dest=dest, type=float, nargs=3, default=None, metavar=("R", "G", "B"), help=text)
        else:
            kind = {int: int, float: float}.get(type(default), str)
            if "int" in str(f.type):
                kind = int
            elif "float" in str(f.type):
                kind = float
            metavar = {int: "N", float: "X"}.get(kind, f.name.upper())
            g.add_argument(flag, dest=dest, type=kind, default=None, help=text, choices=CHOICES.get(f.name),
                           metavar=metavar if f.name not in CHOICES else None)


CROPS = "center, or 10: four corners + centre and their mirrors, softmax averaged (§4.1)"
DEVICE = "cpu, cuda or cuda:N"
WORKERS = "data-loading processes"


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from . import cli as c
    from .precision import CHOICES as PRECISIONS

    p = T.Parser(prog="alexnet", description="AlexNet (NIPS 2012): models, training, "
                                "evaluation, pretrained weights and analysis.",
                                epilog="Errors print one line: exit status 2 for bad input, 1 for a failure at "
                                "run time;\n--debug (anywhere) or ALEXNET_DEBUG=1 shows the traceback. docs/cli.md "
                                "lists every command.\n\nexample:\n  alexnet predict photo.jpg --weights caffenet",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add(p, "--debug", action="store_true", help="show tracebacks instead of one-line errors")
    p.add_argument("--version", action="version", version=f"alexnet {__version__}",
                   help="print the package version and exit")
    add(p, "--follow-symlinks", action="store_true", help="in data folders, follow symlinks that leave "
        "the folder (default: skip and count them; or ALEXNET_FOLLOW_SYMLINKS=1)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                         help="`alexnet COMMAND --help` shows its options and an example")

    command(sub, "models", "list the model zoo with one-line descriptions",
            "The networks `create_model` builds, by name, each with its one-line description\n"
            "(the paper's net, Caffe's, torchvision's, d2l's, Keras', and the CIFAR-10 net of Fig. 1).",
            "alexnet models", c.cmd_models)

    s = command(sub, "train", "train a network (paper §5 recipe and presets); resumable",
                "Train a network from scratch with the paper's recipe (§5) or another preset. Every setting\n"
                "is an option, a config-file key, or comes from the recipe; the run folder is resumable.",
                "alexnet train --preset cifar10-quick --data /path/to/cifar10-jpeg.tar --run-dir runs/quick",
                c.cmd_train)
    _recipe_flags(s, "the model's own recipe (paper for alexnet)")
    _run_flags(s)
    _config_flags(s)

    s = command(sub, "finetune", "transfer learning from pretrained weights to a new folder",
                "Start from pretrained weights, replace the last layer (fc8) with one for the new data's\n"
                "classes, and train the chosen layers; the data is decoded as the weights expect.",
                "alexnet finetune --weights caffenet --data /path/to/flowers --train-layers fc6,fc7,fc8 "
                "--lr-mult fc8=10 --run-dir runs/flowers", c.cmd_finetune)
    g = s.add_argument_group("what to start from and what to train")
    add(g, "--weights", default=None, metavar="WEIGHTS", default_text="required, except with --resume",
        help="pretrained weights: a name from `alexnet weights` or any file `predict` reads (--resume: "
             "the run's own)")
    add(g, "--train-layers", default=None, metavar="LAYERS", default_text="all (see --all)",
        help="comma-separated layers to train, e.g. fc6,fc7,fc8; the rest stay frozen (the new fc8 always trains)")
    add(g, "--all", action="store_true", help="train every layer (the default when --train-layers is not given)")
    add(g, "--lr-mult", nargs="+", type=T.layer_number, default=None, metavar="NAME=X", default_text="1 for every layer",
        help="per-layer learning-rate multipliers, e.g. fc8=10 conv1=0.1")
    _recipe_flags(s, "the pretrained model's recipe")
    _run_flags(s)
    _config_flags(s, skip=("init_from", "train_layers", "lr_mult", "model"))

    s = command(sub, "evaluate", "top-1/top-5 error, 10-crop, ensembles, per-class results",
                "Top-1 and top-5 error of a network, or an ensemble averaging several (§6, Table 2), with\n"
                "centre or 10-crop testing (§4.1); optionally per-class accuracy and a confusion matrix.",
                "alexnet evaluate --weights runs/paper/best.pt --data /path/to/imagenet --crops 10 --out runs/paper/eval",
                c.cmd_evaluate)
    g = s.add_argument_group("what to evaluate")
    add(g, "--weights", required=True, metavar="WEIGHTS", help="a checkpoint, any weights file `predict` "
        "reads, or a name from `alexnet weights`")
    add(g, "--ensemble", nargs="+", default=None, metavar="CKPT", default_text="one network",
        help="more networks whose softmax outputs are averaged with --weights' (Table 2)")
    add(g, "--crops", choices=["center", "10"], default="center", help=CROPS)
    g = s.add_argument_group("data")
    add(g, "--data", required=True, metavar="DATA", help="a folder (<class>/*.jpg, train/ + val/), a .tar, "
        "shards, or a dataset name")
    add(g, "--split", default="val", help="the split to evaluate: train, val or test (val finds a "
        "validation/ or test/ split too)")
    add(g, "--labels", default=None, metavar="FILE", default_text="labels from <class>/ folders",
        help="labels file (<file> <label> per line) for a flat validation folder")
    g = s.add_argument_group("run and output")
    add(g, "--batch-size", type=T.BATCH, default=64, metavar="N", help="images per forward pass (times 10 with --crops 10)")
    add(g, "--workers", type=T.WORKERS, default=2, metavar="N", help=WORKERS)
    add(g, "--device", default="cpu", help=DEVICE)
    add(g, "--out", default=None, metavar="DIR", default_text="nothing written",
        help="folder for per_class.csv, confusion.csv (a table up to 1,000 classes, else the "
             "non-empty cells: true,predicted,images) and evaluation.json")
    add(g, "--json", action="store_true", help="print the result as JSON, without a progress bar")

    s = command(sub, "predict", "top-k labels of images or folders, optionally as a figure",
                "The top-k classes of each image with their probabilities, preprocessed as the weights'\n"
                "card says; --plot draws them as bars beside the images (Fig. 4, left).",
                "alexnet predict photo.jpg photos/ --weights caffenet --topk 5 --plot top5.png", c.cmd_predict)
    add(s, "images", nargs="+", metavar="IMAGE", help="image files, or folders searched recursively")
    g = s.add_argument_group("network")
    add(g, "--weights", required=True, metavar="WEIGHTS", help="a name from `alexnet weights`, or a file: "
        ".caffemodel, .npy, .pth/.pt/.pth.tar, .safetensors, Keras .h5/.weights.h5/.keras")
    add(g, "--model", default=None, metavar="NAME", default_text="what the file says, or guessed from its "
        "shapes", help="model name from `alexnet models` when the file does not say")
    add(g, "--labels", default=None, metavar="FILE", default_text="the card's names, or ImageNet's for "
        "1000-class weights", help="class names: synset_words.txt or imagenet_class_index.json")
    g = s.add_argument_group("output")
    add(g, "--topk", type=T.int_in(1, 100_000), default=5, metavar="K", help="classes shown per image (Fig. 4: 5)")
    add(g, "--crops", choices=["center", "10"], default="center", help=CROPS)
    add(g, "--plot", default=None, metavar="OUT.png", default_text="no figure",
        help="draw the images (the first 32) with their top-5 bars (Fig. 4, left)")
    add(g, "--quiet", action="store_true", help="no progress bar")

    s = command(sub, "convert", "pretrained weights to .safetensors, .pt or .onnx, card included",
                "Read weights in any format we know (Caffe, caffe-tensorflow .npy, torchvision, Keras, ours)\n"
                "and write them with their card (model, preprocessing, class names) as .safetensors, .pt or .onnx.",
                "alexnet convert bvlc_alexnet.caffemodel bvlc_alexnet.safetensors --labels synset_words.txt",
                c.cmd_convert)
    add(s, "src", help="a weights file or a name from `alexnet weights`")
    add(s, "dst", help="the file to write; its suffix chooses the format: .safetensors, .pt or .onnx")
    add(s, "--model", default=None, metavar="NAME", default_text="what the file says, or guessed from "
        "its shapes", help="model name from `alexnet models` when the file does not say")
    add(s, "--labels", default=None, metavar="FILE", default_text="the file's names, or ImageNet's for "
        "1000 classes", help="class names for the card: synset_words.txt or imagenet_class_index.json")
    add(s, "--mean", default=None, metavar="FILE", default_text="the format's per-channel mean",
        help="Caffe's mean image for the card (imagenet_mean.binaryproto or ilsvrc_2012_mean.npy), "
             "cropped as Caffe crops it")

    s = command(sub, "weights", "the pretrained weights known by name: source, checksum, accuracy, licence, "
                "cached or not", "The published AlexNet weights this package knows by name, with source, checksum,\n"
                "published accuracy, licence and whether a verified copy is cached.",
                "alexnet weights --download caffenet", c.cmd_weights)
    add(s, "--download", nargs="+", default=None, metavar="NAME", default_text="download nothing",
        help="fetch and verify these now (the other commands fetch a name on first use)")

    from .analysis.commands import add_parsers
    add_parsers(sub)

    s = command(sub, "summary", "per-layer output shapes, parameters and MACs",
                "Per-layer output shapes, parameter counts and multiply-accumulates of a model (§3.5:\n"
                "60,965,224 parameters for the paper's net).", "alexnet summary alexnet", c.cmd_summary)
    add(s, "model", help="a name from `alexnet models`")
    add(s, "--input-size", type=T.SIDE, default=None, metavar="N", default_text="the model's (227 for alexnet)",
        help="square input side")
    add(s, "--num-classes", type=T.int_in(1, 100_000), default=None, metavar="N", default_text="the model's",
        help="outputs of the last layer")

    s = command(sub, "bench", "throughput benchmarks",
                "Throughput of the network (a training or inference step) or of the data pipeline.",
                "alexnet bench model --mode infer --batch-size 128")
    bsub = s.add_subparsers(dest="what", required=True, metavar="WHAT", help="what to time")
    b = command(bsub, "model", "img/s of a training or inference step, and GFLOP/s vs the measured peak",
                "Images per second of a training or inference step (median over timed steps) and the\n"
                "GFLOP/s it reaches against the peak of the network's own conv/fc layers, per dtype.",
                "alexnet bench model --device cuda --precision bf16 --channels-last", c.cmd_bench)
    g = b.add_argument_group("what to time")
    add(g, "--model", default="alexnet", metavar="NAME", help="a name from `alexnet models`")
    add(g, "--mode", choices=["train", "infer"], default="train",
        help="train: forward, backward and update; infer: forward only")
    add(g, "--batch-size", type=T.BATCH, default=64, metavar="N", help="images per step")
    add(g, "--steps", type=T.int_in(1, 10**6), default=10, metavar="N", help="timed steps, after --warmup untimed ones")
    add(g, "--warmup", type=T.int_in(0, 10**6), default=3, metavar="N", help="untimed steps first")
    g = b.add_argument_group("how to run it")
    add(g, "--device", default="cpu", help=DEVICE)
    add(g, "--channels-last", action="store_true", help="NHWC memory format")
    add(g, "--precision", choices=PRECISIONS, default=None, default_text="auto",
        help="as `train --precision`: auto is bf16 autocast where the CPU/GPU has native bf16, else fp32")
    add(g, "--amp", choices=["bf16", "fp16"], default=None, default_text="none",
        help="the older spelling of --precision bf16|fp16")
    add(g, "--compile", action="store_true", help="torch.compile the model")
    b = command(bsub, "data", "img/s of decode + augmentation vs a naive Pillow loop",
                "Images per second of our loader (decode + resize in workers, batched augmentation)\n"
                "against a naive Pillow loop on the same files, and what one core decodes per second.",
                "alexnet bench data --data /path/to/imagenet-sample --workers 2", c.cmd_bench)
    g = b.add_argument_group("data")
    add(g, "--data", required=True, help="a folder, tar shard(s) or dataset name")
    add(g, "--split", default="train", help="the split to read")
    add(g, "--max-images", type=T.COUNT, default=None, metavar="N", default_text="all", help="images per pass")
    add(g, "--resize", type=T.int_in(0, 8192), default=256, metavar="N", help="shorter side after decoding (§2: 256); "
        "0: the native size")
    add(g, "--crop", type=T.SIDE, default=227, metavar="N", help="side of the random crop (§4.1)")
    g = b.add_argument_group("how to run it")
    add(g, "--workers", type=T.WORKERS, default=2, metavar="N", help=WORKERS)
    add(g, "--batch-size", type=T.BATCH, default=64, metavar="N", help="images per batch")
    add(g, "--epochs", type=T.int_in(1, 10**6), default=2, metavar="N", help="timed passes, after one untimed warm-up pass")

    s = command(sub, "stats", "mean image, channel mean/std and RGB eigen-pairs of a training set",
                "The training set's mean image (§2), channel mean and std, and the eigenvectors and\n"
                "eigenvalues of its RGB covariance (the PCA colour noise of §4.1), into one .pt file.",
                "alexnet stats --data /path/to/imagenet --out imagenet_stats.pt", c.cmd_stats)
    g = s.add_argument_group("data")
    add(g, "--data", required=True, help="a folder, .tar, shards or dataset name")
    add(g, "--split", default="train", help="the split to measure")
    add(g, "--labels", default=None, metavar="FILE", default_text="none", help="labels file for a flat folder "
        "(<file> <label> per line)")
    add(g, "--resize", type=T.int_in(0, 8192), default=256, metavar="N", help="images rescaled to this shorter side and "
        "centre-cropped square, as stored for training (§2); 0: native size (CIFAR)")
    g = s.add_argument_group("output and run")
    add(g, "--out", required=True, metavar="FILE.pt", help="where to write the statistics")
    add(g, "--batch-size", type=T.BATCH, default=256, metavar="N", help="images per batch")
    add(g, "--workers", type=T.WORKERS, default=2, metavar="N", help=WORKERS)

    s = command(sub, "prepare", "write a dataset at 256 short side into WebDataset tar shards",
                "Decode a dataset once, rescale to the shorter side (§2: 256) and write its train and val\n"
                "splits as WebDataset tar shards (JPEG + class), which train and evaluate read fast.",
                "alexnet prepare /path/to/imagenet /path/to/imagenet-shards --shard-size 5000", c.cmd_prepare)
    add(s, "src", help="the dataset: a folder, .tar, shards or dataset name")
    add(s, "dst", help="folder for train-*.tar, val-*.tar and classes.txt")
    add(s, "--resize", type=T.SIDE, default=256, metavar="N", help="shorter side the images are stored at (§2)")
    add(s, "--shard-size", type=T.int_in(1, 10**7), default=1000, metavar="N", help="images per shard")
    add(s, "--quality", type=T.int_in(1, 100), default=95, metavar="Q", help="JPEG quality, 1..100")
    add(s, "--labels", default=None, metavar="FILE", default_text="none", help="labels file for a flat "
        "folder (<file> <label> per line)")
    add(s, "--workers", type=T.WORKERS, default=2, metavar="N", help=WORKERS)
    return p
