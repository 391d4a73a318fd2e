"""`alexnet bench model|data`: throughput of the network's step or of the data pipeline (bench.py)."""

from __future__ import annotations

from ..bench import run_data_bench, run_model_bench
from ..errors import BadInput
from ..precision import CHOICES as PRECISIONS
from . import argtypes as T
from .options import add, batch_size, command, data, device, split, workers


def register(sub) -> None:
    s = command(
        sub,
        "bench",
        "throughput benchmarks",
        "Throughput of the network (a training or inference step) or of the data pipeline.",
        "alexnet bench model --mode infer --batch-size 128",
    )
    bsub = s.add_subparsers(dest="what", required=True, metavar="WHAT", help="what to time")
    b = command(
        bsub,
        "model",
        "img/s of a training or inference step, and GFLOP/s vs the measured peak",
        "Images per second of a training or inference step (median over timed steps) and the\n"
        "GFLOP/s it reaches against the peak of the network's own conv/fc layers, per dtype.",
        "alexnet bench model --device cuda --precision bf16 --channels-last",
        run_model,
    )
    g = b.add_argument_group("what to time")
    add(g, "--model", default="alexnet", metavar="NAME", help="a name from `alexnet models`")
    add(
        g,
        "--mode",
        choices=["train", "infer"],
        default="train",
        help="train: forward, backward and update; infer: forward only",
    )
    batch_size(g, 64, help="images per step")
    add(
        g,
        "--steps",
        type=T.int_in(1, 10**6),
        default=10,
        metavar="N",
        help="timed steps, after --warmup untimed ones",
    )
    add(g, "--warmup", type=T.int_in(0, 10**6), default=3, metavar="N", help="untimed steps first")
    g = b.add_argument_group("how to run it")
    device(g)
    add(g, "--channels-last", action="store_true", help="NHWC memory format")
    add(
        g,
        "--precision",
        choices=PRECISIONS,
        default=None,
        default_text="auto",
        help="as `train --precision`: auto is bf16 autocast where the CPU/GPU has native bf16, else fp32",
    )
    add(
        g,
        "--amp",
        choices=["bf16", "fp16"],
        default=None,
        default_text="none",
        help="the older spelling of --precision bf16|fp16",
    )
    add(g, "--compile", action="store_true", help="torch.compile the model")

    b = command(
        bsub,
        "data",
        "img/s of decode + augmentation vs a naive Pillow loop",
        "Images per second of our loader (decode + resize in workers, batched augmentation),\n"
        "in all and per worker, against a naive Pillow loop on the same files; the host copies'\n"
        "CPU time per batch; what one core decodes per second.",
        "alexnet bench data --data /path/to/imagenet-sample --workers 2",
        run_data,
    )
    g = b.add_argument_group("data")
    data(g)
    split(g, "train")
    add(
        g, "--max-images", type=T.COUNT, default=None, metavar="N", default_text="all", help="images per pass"
    )
    add(
        g,
        "--resize",
        type=T.int_in(0, 8192),
        default=256,
        metavar="N",
        help="shorter side after decoding (§2: 256); 0: the native size",
    )
    add(g, "--crop", type=T.SIDE, default=227, metavar="N", help="side of the random crop (§4.1)")
    g = b.add_argument_group("how to run it")
    workers(g, auto=True)
    batch_size(g, 64)
    add(
        g,
        "--epochs",
        type=T.int_in(1, 10**6),
        default=2,
        metavar="N",
        help="timed passes, after one untimed warm-up pass",
    )


def run_model(args) -> int:
    if args.amp and args.precision not in (None, args.amp):
        raise BadInput(f"--amp {args.amp} and --precision {args.precision} disagree; give one")
    run_model_bench(
        args.model,
        args.mode,
        args.batch_size,
        args.steps,
        args.warmup,
        args.device,
        args.channels_last,
        args.amp or args.precision or "auto",
        args.compile,
    )
    return 0


def run_data(args) -> int:
    run_data_bench(
        args.data,
        args.split,
        args.max_images,
        args.resize or None,
        args.crop,
        args.workers,
        args.batch_size,
        args.epochs,
    )
    return 0
