"""`alexnet explore`'s speed for the paper's network: how long a new image takes to come back as
the page's first panels (top-5 and every layer's activation grids), in the library and through
HTTP (a real uvicorn server, the upload as a browser sends it, the JSON it gets back), and how
long the default occlusion map takes. The issue's target: <= 1 s per image on 2 cores.

    python benchmarks/explore.py [--images FOLDER] [--n 20] [--weights W]

Without --weights: the paper's two-tower net, seeded and untrained (the time does not depend on
the values). Without --images: $ALEXNET_TEST_DATA/imagenet-sample, else random 500x375 JPEGs.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alexnet import create_model
from alexnet.card import Card
from alexnet.explore import Explorer
from alexnet.explore.app import running  # the explore extra (starlette, uvicorn)
from alexnet.explore.network import positions
from alexnet.precision import cpu_name


def images(folder: str | None, n: int) -> list[tuple[str, bytes]]:
    root = Path(folder or Path(os.environ.get("ALEXNET_TEST_DATA", "../shared/data")) / "imagenet-sample")
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
        return [(p.name, p.read_bytes()) for p in files]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        out.append((f"random{i}.jpg", buf.getvalue()))
    return out


def in_worker(work) -> None:
    """Run `work` in a thread of its own, as the server runs its work (on a loaded machine torch's
    two OpenMP threads in the main thread can be several times slower: they wait on each other at
    every barrier)."""
    t = threading.Thread(target=work)
    t.start()
    t.join()


def line(what: str, ms: list[float]) -> str:
    return (
        f"{what:<38} median {statistics.median(ms):7.1f} ms   p90 {np.percentile(ms, 90):7.1f} ms   "
        f"max {max(ms):7.1f} ms"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", default=None)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--weights", default=None)
    args = p.parse_args()

    if args.weights:
        ex = Explorer.load(args.weights)
    else:
        torch.manual_seed(0)
        ex = Explorer(
            create_model("alexnet"),
            Card(model="alexnet", num_classes=1000, input_size=227, model_kw={"groups": 2}),
            "alexnet (untrained)",
        )
    pics = images(args.images, 2 * args.n)
    print(
        f"{ex.card.model}, {len(pics)} images; CPU: {cpu_name()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; load average "
        f"{os.getloadavg()[0]:.1f} (other work on the machine slows every number below)"
    )
    ex.analyze(ex.open(*reversed(pics[0])))  # warm-up (first-call allocations, kernel selection)

    forward, drawing, total = [], [], []

    def library():
        for name, raw in pics[: args.n]:
            t0 = time.perf_counter()
            view = ex.open(raw, name)
            t1 = time.perf_counter()
            ex.analyze(view)
            t2 = time.perf_counter()
            forward.append((t1 - t0) * 1e3)
            drawing.append((t2 - t1) * 1e3)
            total.append((t2 - t0) * 1e3)

    in_worker(library)
    print(line("decode + forward (every stage kept)", forward))
    print(line("grids, input and top-5 as PNG/JSON", drawing))
    print(line("a new image, in the library", total))

    http, sizes = [], []
    with running(ex) as url:
        for name, raw in pics[args.n :]:
            t0 = time.perf_counter()
            req = urllib.request.Request(f"{url}/api/upload?name={name}", data=raw, method="POST")
            with urllib.request.urlopen(req) as r:
                body = r.read()
            http.append((time.perf_counter() - t0) * 1e3)
            sizes.append(len(body))
    print(
        line("a new image, uploaded over HTTP", http)
        + f"   ({statistics.median(sizes) / 1e3:.0f} kB of JSON)"
    )

    view = ex.open(pics[0][1], pics[0][0])
    side = ex.pipeline.crop
    size, stride = round(side / 5), round(side / 14)  # the page's default square and step
    t0 = time.perf_counter()
    in_worker(lambda: list(ex.occlusion(view.id, size, stride, threading.Event())))
    n = len(positions(side, size, stride))
    print(
        f"occlusion map, {size}px square every {stride}px ({n * n} positions): "
        f"{time.perf_counter() - t0:.1f} s, progress streamed per 16"
    )
    ok = statistics.median(total) <= 1000 and statistics.median(http) <= 1000
    print(f"target <= 1 s per new image: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
