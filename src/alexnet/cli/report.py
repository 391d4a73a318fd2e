"""`alexnet report`: one self-contained HTML page about a training run."""

from __future__ import annotations

from ..analysis.report import build_report
from . import argtypes as T
from .options import add, command, workers


def register(sub) -> None:
    s = command(
        sub,
        "report",
        "one self-contained HTML page about a training run",
        "One self-contained HTML page about a run: its settings, curves, final errors, confusion\n"
        "matrix, conv1 filters and sample predictions.",
        "alexnet report runs/quick --out runs/quick/report.html",
        run,
    )
    add(s, "run", help="a run folder of `alexnet train`")
    add(s, "--out", required=True, metavar="REPORT.html", help="the page to write")
    add(
        s,
        "--max-images",
        type=T.COUNT,
        default=2000,
        metavar="N",
        help="validation images for the confusion matrix",
    )
    workers(s)


def run(args) -> int:
    print(f"report -> {build_report(args.run, args.out, args.max_images, workers=args.workers)}")
    return 0
