"""`alexnet explore`: the network opened up in a browser (a local web page; the explore extra)."""

from __future__ import annotations

from ..errors import RunFailure
from ..explore import Explorer
from . import argtypes as T
from .options import add, class_names, command, weights


def register(sub) -> None:
    s = command(
        sub,
        "explore",
        "the network opened up in a browser: maps, filters, occlusion, LRN, neighbours",
        "A local web page for one image at a time (from --images FOLDER, or uploaded): its top-5\n"
        "(Fig. 4 left), every layer's maps (the two towers side by side), conv1's kernels (Fig. 3),\n"
        "an occlusion map (Zeiler & Fergus 2014), what LRN does (§3.3) and the nearest images by\n"
        "fc7 (§6.1). Needs the explore extra: pip install 'alexnet[explore]'.",
        "alexnet explore --weights caffenet --images photos/ --features train_fc7.npz",
        run,
    )
    g = s.add_argument_group("network")
    weights(g)
    class_names(g)
    g = s.add_argument_group("what the page shows")
    add(
        g,
        "--images",
        default=None,
        metavar="FOLDER",
        default_text="uploads only",
        help="images to pick from (searched recursively); their patches show what drives each channel",
    )
    add(
        g,
        "--features",
        default=None,
        metavar="FILE.npz",
        default_text="no neighbours",
        help="an index from `alexnet features` (same network): the nearest images by its layer (§6.1)",
    )
    g = s.add_argument_group("server")
    add(
        g,
        "--port",
        type=T.int_in(0, 65535),
        default=8000,
        metavar="N",
        help="the port to serve on; 0: any free one",
    )
    add(
        g,
        "--host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the address to serve on; another than 127.0.0.1 shows the page (and FOLDER) to the network",
    )


def run(args) -> int:
    try:  # starlette and uvicorn: the optional explore extra, imported only when the command runs
        from ..explore.app import serve
    except ImportError as e:
        raise RunFailure(
            f"needs the explore extra ({e.name or e} is missing): pip install 'alexnet[explore]'"
        ) from None
    ex = Explorer.load(args.weights, args.images, args.features, args.class_names)
    folder = f", {len(ex.folder)} images in {args.images}" if ex.folder else ""
    print(f"alexnet explore: {ex.card.model} from {args.weights}{folder}; Ctrl-C stops", flush=True)
    serve(ex, args.host, args.port, announce=lambda line: print(line, flush=True))  # until Ctrl-C
    print("alexnet explore: stopped")
    return 0
