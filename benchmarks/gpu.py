"""One command for a first hour on a GPU: training img/s of our `alexnet` vs the torch-LRN and
no-LRN nets (fp32/bf16; eager, torch.compile, CUDA graphs), the LRN layer alone (Triton vs torch
ops vs torch.nn), and the loader (JPEG originals, prepared shards) feeding the device; peak memory.

    python benchmarks/gpu.py                                  # CUDA, batch 256, the full plan
    python benchmarks/gpu.py --budget 480 --shards /data/prepared --data /data/imagenet/train
    python benchmarks/gpu.py --device cpu --quick             # smoke test (CI): tiny, a few steps

The plan runs in priority order (eager bf16 first: the issue's target is >= 20,000 img/s for
`alexnet` in bf16 at batch 256 on one H100), each configuration bounded by --steps and
--max-seconds, the whole run by --budget; what the budget leaves out is marked skipped. Every row
is printed and the Markdown table (--out) rewritten as soon as it is measured, so a killed run
keeps what it had. A configuration that fails (out of memory, a compiler error) is recorded with
its one-line error, the plan goes on, and the exit status is 1. All models run channels_last.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alexnet.bench import BenchConfig, copy_times, decode_rates, loader_rate, prepare, sync  # noqa: E402
from alexnet.data import resolve_workers  # noqa: E402
from alexnet.nn import lrn as lrn_mod  # noqa: E402
from alexnet.precision import auto_precision, cpu_name  # noqa: E402
from alexnet.runtime import tune_allocator  # noqa: E402
from lrn_peers import peers  # noqa: E402  (the same three networks, checked to compute the same function)

ROOT = Path(__file__).resolve().parents[1]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
OURS = "alexnet"
TORCH_OPS = "alexnet, LRN as torch ops"


@contextmanager
def lrn_as_torch_ops(on: bool):
    """Our network with its LRN as plain torch ops instead of the Triton kernels (CUDA)."""
    saved = lrn_mod._triton_module
    if on:
        lrn_mod._triton_module = False  # what triton_lrn() caches when triton cannot run
    try:
        yield
    finally:
        lrn_mod._triton_module = saved


def cuda_graphed(step):
    """The whole training step (forward, loss, backward, SGD update) captured as one CUDA graph
    and replayed: no kernel-launch cost and no Python per step. Fixed input, fixed LR."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # thread-local capture: only this thread's CUDA calls may not break it. In the default global
    # mode a pin-memory thread of a loader (pinned allocations, copies) invalidates the capture;
    # loader_rate also stops its loader's threads and workers before it returns.
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        step()
    return graph.replay


def timed(step, args, device) -> tuple[float, int, float]:
    """(seconds per step, timed steps, seconds of the first step, which includes compilation)."""
    sync(device)
    t = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - t
    for _ in range(args.warmup - 1):
        step()
    sync(device)
    t, done = time.perf_counter(), 0
    while done < args.steps and (done == 0 or time.perf_counter() - t < args.max_seconds):
        step()  # no sync per step: the host runs ahead and the device stays busy, as in training
        done += 1
    sync(device)
    return (time.perf_counter() - t) / done, done, first


def train_row(models, name, precision, mode, args, device) -> dict:
    cfg = BenchConfig(
        batch_size=args.batch_size, mode="train", device=str(device), channels_last=True, precision=precision
    )
    model = copy.deepcopy(models["alexnet" if name == TORCH_OPS else name])
    if mode.startswith("compile"):
        model = torch.compile(model, mode="reduce-overhead" if mode == "compile+cudagraphs" else None)
    with lrn_as_torch_ops(name == TORCH_OPS):
        _, step = prepare(model, cfg)
        if mode == "compile+cudagraphs":
            inner = step

            def step():
                torch.compiler.cudagraph_mark_step_begin()  # a new iteration: outputs may be reused
                inner()
        elif mode == "cuda-graph":
            step = cuda_graphed(step)
        secs, done, first = timed(step, args, device)
    return {"img/s": args.batch_size / secs, "ms/step": 1e3 * secs, "steps": done, "first step s": first}


def lrn_row(impl, layer, precision, args, device) -> dict:
    c, s = {"conv1": (96, 55), "conv2": (256, 27)}[layer]
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(args.batch_size, c, s, s, device=device, generator=g).relu_().mul_(40)
    x = x.to(DTYPES[precision]).contiguous(memory_format=torch.channels_last).requires_grad_()
    dy = torch.randn_like(x)
    f = (
        torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)
        if impl == "torch.nn.LocalResponseNorm"
        else lrn_mod.LocalResponseNorm(5, 1e-4, 0.75, 2.0)
    )  # the same function (§3.3)
    # as inside the network: under bf16 autocast (where torch.nn's CPU kernel runs in fp32)
    amp = torch.autocast(device.type, torch.bfloat16) if precision == "bf16" else nullcontext()

    def step():
        with amp:
            y = f(x)
        torch.autograd.grad(y, x, dy)

    with lrn_as_torch_ops(impl == TORCH_OPS):
        secs, done, _ = timed(step, args, device)
    moved = 5 * x.numel() * x.element_size()  # fwd reads x, writes y; bwd reads dy and x, writes dx
    return {"ms/step": 1e3 * secs, "GB/s": moved / secs / 1e9, "steps": done}


def loader_row(kind, args, device) -> dict:
    from alexnet.data import Decoding, open_dataset

    spec = args.data if kind == "JPEG originals" else args.shards
    ds = open_dataset(spec, "train", Decoding(args.resize, args.resize))
    n = min(len(ds), args.loader_images)
    per_core, per_core_resize, _ = decode_rates(ds.source, min(n, 200), args.resize, args.max_seconds / 2)
    rate = loader_rate(
        ds,
        n,
        args.batch_size,
        args.workers,
        args.crop,
        epochs=2,
        device=str(device),
        max_seconds=args.max_seconds,
    )
    ms = copy_times(ds, args.batch_size)  # CPU ms per batch: the workers' collate, the pin-memory copy
    return {
        "img/s": rate,
        "img/s/worker": rate / max(1, args.workers),
        "decode img/s/core": per_core,
        "decode+resize img/s/core": per_core_resize,
        "collate ms/batch": ms["collate into shared memory"],
        "pin ms/batch": ms.get("pin"),
        "images": n,
    }


def plan(args, device) -> list[tuple]:
    """(section, name, precision, mode or layer, why it is skipped or None), most important first."""
    cuda, rows = device.type == "cuda", []
    nets = [OURS, TORCH_OPS, "torch-lrn", "no-lrn"]
    no_cuda = "CUDA only"
    slow = "--quick" if args.quick else None
    for p in ("bf16", "fp32"):
        rows += [
            (
                "train",
                n,
                p,
                "eager",
                no_cuda if n == TORCH_OPS and not cuda else slow if p == "fp32" else None,
            )
            for n in nets
        ]  # --quick: the same code once
    for p in ("bf16", "fp32"):
        for layer in ("conv1", "conv2"):
            rows += [
                ("lrn", n, p, layer, no_cuda if n == TORCH_OPS and not cuda else None)
                for n in (OURS, TORCH_OPS, "torch.nn.LocalResponseNorm")
            ]
    for kind, spec in (("JPEG originals", args.data), ("prepared shards", args.shards)):
        rows.append(
            (
                "loader",
                kind,
                "uint8",
                "workers -> device",
                None
                if spec
                else "no --shards given (make them with `alexnet prepare SRC DST`)"
                if kind[0] == "p"
                else "no --data given",
            )
        )
    for p, mode, names in [
        ("bf16", "cuda-graph", [OURS, "no-lrn"]),
        ("bf16", "compile", [OURS, "no-lrn", "torch-lrn"]),
        ("bf16", "compile+cudagraphs", [OURS, "no-lrn"]),
        ("fp32", "cuda-graph", [OURS]),
        ("fp32", "compile", [OURS, "no-lrn"]),
    ]:
        why = no_cuda if "graph" in mode and not cuda else slow
        rows += [("train", n, p, mode, why) for n in names]
    if args.only:
        rows = [r for r in rows if all(w in " ".join(r[:4]) for w in args.only)]  # section name prec mode
    return rows


COLUMNS = {
    "train": [
        "model",
        "precision",
        "mode",
        "img/s",
        "ms/step",
        "ours / this",
        "peak MiB",
        "first step s",
        "steps",
        "note",
    ],
    "lrn": ["implementation", "precision", "layer", "ms/step", "GB/s", "peak MiB", "steps", "note"],
    "loader": [
        "data",
        "img/s",
        "img/s/worker",
        "decode img/s/core",
        "decode+resize img/s/core",
        "collate ms/batch",
        "pin ms/batch",
        "images",
        "note",
    ],
}
KEYS = {"model": "name", "implementation": "name", "data": "name", "mode": "what", "layer": "what"}
TITLES = {
    "train": "Training step (batch {b}, channels_last, SGD momentum)",
    "lrn": "LRN layer alone, forward + backward (batch {b}, channels_last)",
    "loader": "Loader: workers decode + resize, uint8 batches to the device, augmentation there",
}


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if v >= 10 else f"{v:.3g}"
    return "-" if v is None else str(v)


def write_markdown(path: Path, header: list[str], results: list[dict], batch: int) -> None:
    ours = {
        (r["precision"], r["what"]): r.get("img/s")
        for r in results
        if r["section"] == "train" and r["name"] == OURS
    }
    lines = [*header, ""]
    for section, cols in COLUMNS.items():
        rows = [r for r in results if r["section"] == section]
        if not rows:
            continue
        lines += [
            f"### {TITLES[section].format(b=batch)}",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
        ]
        for r in rows:
            if section == "train" and r.get("img/s") and ours.get((r["precision"], r["what"])):
                r["ours / this"] = f"{ours[(r['precision'], r['what'])] / r['img/s']:.2f}x"
            lines.append("| " + " | ".join(fmt(r.get(KEYS.get(c, c))) for c in cols) + " |")
        lines.append("")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)  # a reader (or a kill) never sees half a file


def describe(device: torch.device, args) -> list[str]:
    import importlib.util

    triton = "absent"
    if importlib.util.find_spec("triton"):
        import triton

        triton = triton.__version__
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        try:
            driver = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.split()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            driver = "?"
        what = (
            f"{props.name} (sm_{props.major}{props.minor}, {props.total_memory / 2**30:.0f} GiB), "
            f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, driver {driver}"
        )
    else:
        what = f"CPU only, {torch.get_num_threads()} threads"
    auto, reason = auto_precision(device)
    return [
        f"## benchmarks/gpu.py, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"- device: {what}",
        f"- host: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, triton {triton}",
        f"- settings: cudnn.benchmark={torch.backends.cudnn.benchmark}, cuDNN TF32 in fp32 convolutions="
        f"{torch.backends.cudnn.allow_tf32}, fp32 matmul precision={torch.get_float32_matmul_precision()}; "
        f"at most {args.steps} timed steps after {args.warmup} warm-up, {args.max_seconds:g} s each",
        f"- `--precision auto` here: {auto} ({reason})",
        f"- command: `python benchmarks/gpu.py {' '.join(sys.argv[1:])}`",
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=None, help="default 256 (2 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default 50; 1 --quick)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10; 1 --quick)")
    p.add_argument("--max-seconds", type=float, default=None, help="timed seconds per row (default 30)")
    p.add_argument("--budget", type=float, default=1500, help="seconds for the whole plan")
    default_data = ROOT.parent / "shared" / "data" / "imagenet-sample"
    p.add_argument(
        "--data",
        default=str(default_data) if default_data.is_dir() else None,
        help="JPEG originals (a folder) for the loader rows",
    )
    p.add_argument("--shards", default=None, help="`alexnet prepare` output for the loader rows")
    p.add_argument("--loader-images", type=int, default=None, help="images per loader row (default 2000)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="loader workers (default: as `--workers auto` on this device: cores - 2 on CUDA)",
    )
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=227)
    p.add_argument("--only", nargs="+", default=None, help="rows whose description has all these words")
    p.add_argument("--out", default="runs/gpu-bench.md")
    p.add_argument("--quick", action="store_true", help="tiny batch, few steps, no compiling (smoke test)")
    args = p.parse_args(argv)
    q = args.quick
    for name, full, quick in [
        ("batch_size", 256, 2),
        ("steps", 50, 1),
        ("warmup", 10, 1),
        ("max_seconds", 30.0, 5.0),
        ("loader_images", 2000, 8),
        ("workers", None, 0),
    ]:
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    if args.batch_size < 1 or args.steps < 1 or args.warmup < 1:
        p.error("--batch-size, --steps and --warmup must be >= 1")
    device = torch.device(args.device)
    if args.workers is None:
        args.workers = resolve_workers("auto", device)  # what `alexnet train` takes here
    if device.type == "cuda":
        if not torch.cuda.is_available():
            p.error(f"--device {args.device}: CUDA is not available on this machine")
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest algorithms
    tune_allocator()  # as `alexnet train` runs on CPU (runtime.py); nothing to do for CUDA memory
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = describe(device, args)
    print("\n".join(header), flush=True)
    models = peers()
    results, failed, start = [], 0, time.perf_counter()
    for section, name, precision, what, skip in plan(args, device):
        row = {"section": section, "name": name, "precision": precision, "what": what}
        began = time.perf_counter()
        left = args.budget - (began - start)
        if skip is None and left < (90 if "compile" in what else 2 * args.max_seconds):
            skip = f"budget: {left:.0f} s left"
        if skip:
            row["note"] = f"skipped: {skip}"
        else:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            try:
                if section == "train":
                    row.update(train_row(models, name, precision, what, args, device))
                elif section == "lrn":
                    row.update(lrn_row(name, what, precision, args, device))
                else:
                    row.update(loader_row(name, args, device))
                if device.type == "cuda":
                    row["peak MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
            except Exception as e:  # recorded in the table and the exit status; the plan goes on
                failed += 1
                row["note"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            finally:
                if "compile" in what:
                    torch._dynamo.reset()
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        results.append(row)
        write_markdown(out, header, results, args.batch_size)
        print(
            " | ".join(
                fmt(v) if k in ("section", "name", "precision", "what") else f"{k} {fmt(v)}"
                for k, v in row.items()
            )
            + f" | row took {time.perf_counter() - began:.1f} s",
            flush=True,
        )
    best = max(
        (
            r["img/s"]
            for r in results
            if r["section"] == "train" and r["name"] == OURS and r["precision"] == "bf16" and r.get("img/s")
        ),
        default=None,
    )
    print(
        f"# alexnet bf16 training, best mode: {fmt(best)} img/s at batch {args.batch_size} "
        f"(target on one H100 at batch 256: >= 20,000); table: {out}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
