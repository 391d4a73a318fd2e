"""`alexnet predict`: the top-k classes of images, optionally drawn as bars (Fig. 4, left)."""

from __future__ import annotations

from pathlib import Path

from ..analysis.figures import check_out, prediction_grid
from ..errors import shown
from ..evaluation.predict import predict
from . import argtypes as T
from .options import add, class_names, command, crops, model, quiet, weights

PLOT_MAX = 32  # images in `predict --plot`'s figure: thousands help nobody (and take GBs)


def register(sub) -> None:
    s = command(
        sub,
        "predict",
        "top-k labels of images or folders, optionally as a figure",
        "The top-k classes of each image with their probabilities, preprocessed as the weights'\n"
        "card says; --plot draws them as bars beside the images (Fig. 4, left).",
        "alexnet predict photo.jpg photos/ --weights caffenet --topk 5 --plot top5.png",
        run,
    )
    add(s, "images", nargs="+", metavar="IMAGE", help="image files, or folders searched recursively")
    g = s.add_argument_group("network")
    weights(g)
    model(g)
    class_names(g)
    g = s.add_argument_group("output")
    add(
        g,
        "--topk",
        type=T.int_in(1, 100_000),
        default=5,
        metavar="K",
        help="classes shown per image (Fig. 4: 5)",
    )
    crops(g)
    add(
        g,
        "--plot",
        default=None,
        metavar="OUT.png",
        default_text="no figure",
        help=f"draw the images (the first {PLOT_MAX}) with their top-5 bars (Fig. 4, left)",
    )
    quiet(g)


def run(args) -> int:
    if args.plot:
        check_out(args.plot, "--plot")
    results, _ = predict(
        args.images,
        args.weights,
        args.class_names,
        args.topk,
        args.crops,
        args.model,
        progress=not args.quiet,
    )
    for path, top, _ in results:  # file and class names are strangers' text: shown escaped
        print(shown(path))
        for label, p in top:
            print(f"  {p:7.2%}  {shown(label)}")
    if args.plot:
        few = results[:PLOT_MAX]
        out = prediction_grid(
            [img for _, _, img in few], [t for _, t, _ in few], args.plot, [Path(p).name for p, _, _ in few]
        )
        more = f" (the first {PLOT_MAX} of {len(results)} images)" if len(results) > PLOT_MAX else ""
        print(f"figure -> {out}{more}")
    return 0
