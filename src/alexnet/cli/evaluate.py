"""`alexnet evaluate`: top-1/top-5 error of a network or an ensemble (§6, Table 2), centre or
10-crop (§4.1), per-class results on request."""

from __future__ import annotations

from ..evaluation.evaluate import evaluate
from ..jsonio import dumps
from .options import add, batch_size, command, crops, data, data_labels, device, split, weights, workers


def register(sub) -> None:
    s = command(
        sub,
        "evaluate",
        "top-1/top-5 error, 10-crop, ensembles, per-class results",
        "Top-1 and top-5 error of a network, or an ensemble averaging several (§6, Table 2), with\n"
        "centre or 10-crop testing (§4.1); optionally per-class accuracy and a confusion matrix.",
        "alexnet evaluate --weights runs/paper/best.pt --data /path/to/imagenet --crops 10 "
        "--out runs/paper/eval",
        run,
    )
    g = s.add_argument_group("what to evaluate")
    weights(g)
    add(
        g,
        "--ensemble",
        nargs="+",
        default=None,
        metavar="CKPT",
        default_text="one network",
        help="more networks whose softmax outputs are averaged with --weights' (Table 2)",
    )
    crops(g)
    g = s.add_argument_group("data")
    data(g)
    split(g, "val")
    data_labels(g, help="labels file (<file> <label> per line) for a flat validation folder")
    g = s.add_argument_group("run and output")
    batch_size(g, 64, help="images per forward pass (times 10 with --crops 10)")
    workers(g, auto=True)
    device(g)
    add(
        g,
        "--out",
        default=None,
        metavar="DIR",
        default_text="nothing written",
        help="folder for per_class.csv, confusion.csv (a table up to 1,000 classes, else the "
        "non-empty cells: true,predicted,images) and evaluation.json",
    )
    add(g, "--json", action="store_true", help="print the result as JSON, without a progress bar")


def run(args) -> int:
    r = evaluate(
        args.weights,
        args.data,
        args.crops,
        args.ensemble,
        args.split,
        args.labels,
        args.batch_size,
        args.workers,
        args.device,
        args.out,
        progress=not args.json,
    )
    if args.json:
        print(dumps(r))
    else:
        print(
            f"{r['images']} images, {len(r['models'])} model(s), {r['crops']} crop(s): top-1 error "
            f"{r['top1_err']:.2%}, top-5 error {r['top5_err']:.2%}"
            + (f", {r['skipped']} file(s) skipped" if r["skipped"] else "")
            + (f"; per-class accuracy and confusion matrix in {r['out_dir']}" if r.get("out_dir") else "")
        )
    return 0
