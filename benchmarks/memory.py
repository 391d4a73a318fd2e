"""Peak memory of the heavy commands: the main process plus its loader workers (issue 11).

    python benchmarks/memory.py [--cases cifar32 cifar256 imagenet] [--train-images 5120]
    python benchmarks/memory.py --cases none --allocator 5     # malloc tuning: speed and memory
    python benchmarks/memory.py -- alexnet train --preset cifar10-quick --data D --run-dir R   # any command

For each case, `alexnet stats`, a short `alexnet train` (one epoch of --limit-batches batches,
with its own statistics pass: the bare command of the issue), then `alexnet evaluate` and
`alexnet features` of the checkpoint it wrote, each in a fresh process whose tree (main process
and loader workers) is sampled from /proc (alexnet.memory). CIFAR runs on a subset tar cut from
cifar10-jpeg.tar (the images as stored, evenly per class), so each run stays short; a leak
shows up as growth per batch, which 20 batches of 256 make plain.

Columns: peak RSS summed over the tree (pages forked workers share with the main process count
once per process), peak PSS (shared pages divided among the processes: the memory really used),
the main process's own peak (VmHWM), and the most processes alive at once.

--allocator N alternates `alexnet bench model --channels-last` (AlexNet, batch 64, training step)
with and without the allocator tuning of alexnet.runtime, N times each, in separate processes, and
prints the medians: img/s, CPU seconds and page faults per run, peak RSS.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

from alexnet.memory import GB, run_measured
from alexnet.precision import cpu_name

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ALEXNET_TEST_DATA", ROOT.parent / "shared" / "data"))


def cifar_subset(src: Path, dst: Path, n_train: int, n_test: int) -> Path:
    """The first n/10 images of each class of each split, same layout (cifar10/<split>/<class>/)."""
    by_group, quota = defaultdict(list), {"train": n_train // 10, "test": n_test // 10}
    with tarfile.open(src) as tin:
        for m in tin:
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 4 and parts[1] in quota:
                group = by_group[parts[1], parts[2]]
                if len(group) < quota[parts[1]]:
                    group.append((m, tin.extractfile(m).read()))
        with tarfile.open(dst, "w") as tout:
            for (_, _), members in sorted(by_group.items()):
                for m, data in members:
                    tout.addfile(m, io.BytesIO(data))
    return dst


def case_commands(name: str, data: str, tmp: Path, limit_batches: int) -> list[tuple[str, list[str]]]:
    a = ["alexnet"]
    if name.startswith("cifar"):
        resize, model, layer, extra = ("0" if name == "cifar32" else "256"), "cifar_convnet", "pool5", []
    else:  # the ImageNet sample: one flat folder serves as training and validation data
        resize, model, layer, extra = "256", "alexnet", "fc7", ["--val-data", data]
    run = tmp / name / "run"
    return [
        ("stats", a + ["stats", "--data", data, "--resize", resize, "--out", str(tmp / name / "stats.pt")]),
        (
            "train",
            a
            + [
                "train",
                "--model",
                model,
                "--data",
                data,
                "--resize",
                resize,
                *extra,
                "--epochs",
                "1",
                "--limit-batches",
                str(limit_batches),
                "--run-dir",
                str(run),
                "--quiet",
            ],
        ),
        ("evaluate", a + ["evaluate", "--weights", str(run / "last.pt"), "--data", data, "--json"]),
        (
            "features",
            a
            + [
                "features",
                "--weights",
                str(run / "last.pt"),
                "--data",
                data,
                "--layer",
                layer,
                "--out",
                str(tmp / name / "features.npz"),
            ],
        ),
    ]


def memory_table(args, tmp: Path) -> list[dict]:
    rows = []
    cifar = DATA / "cifar10-jpeg.tar"
    for name in args.cases:
        if name.startswith("cifar"):
            if not cifar.exists():
                print(f"# {name}: {cifar} is absent, skipped", file=sys.stderr)
                continue
            sub = tmp / "cifar-subset.tar"
            if not sub.exists():
                cifar_subset(cifar, sub, args.train_images, args.test_images)
            data, what = (
                str(sub),
                (
                    f"CIFAR-10 {'32 px (--resize 0)' if name == 'cifar32' else 'upsampled to 256'}, "
                    f"{args.train_images:,} + {args.test_images:,} images"
                ),
            )
            limit = args.limit_batches
        else:
            data, what, limit = str(DATA / "imagenet-sample"), "ImageNet sample (1,000 JPEGs)", 2
            if not Path(data).is_dir():
                print(f"# {name}: {data} is absent, skipped", file=sys.stderr)
                continue
        for command, cmd in case_commands(name, data, tmp, limit):
            m = run_measured(cmd, limit=int(args.limit_gb * GB), timeout=args.timeout)
            status = (
                "ok"
                if m.returncode == 0
                else ("killed at the limit" if m.peak.killed else f"exit {m.returncode}")
            )
            rows.append(
                {
                    "data": what,
                    "command": command,
                    "status": status,
                    "seconds": m.seconds,
                    "rss_gb": m.peak.rss / GB,
                    "pss_gb": m.peak.pss / GB,
                    "main_gb": m.peak.main_rss / GB,
                    "processes": m.peak.processes,
                    "cmd": " ".join(cmd),
                }
            )
            print(
                f"# {what} | {command}: {m.peak.row()} ({status}, {m.seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            if m.returncode != 0:
                print(m.output[-2000:], file=sys.stderr)
    print("| data | command | peak RSS, tree | peak PSS, tree | main process | processes | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        note = "" if r["status"] == "ok" else f" ({r['status']})"
        print(
            f"| {r['data']} | {r['command']}{note} | {r['rss_gb']:.2f} GB | {r['pss_gb']:.2f} GB | "
            f"{r['main_gb']:.2f} GB | {r['processes']} | {r['seconds']:.0f} |"
        )
    return rows


def allocator_table(args) -> list[dict]:
    """Tuned and untuned in separate processes, taking turns, so that the load of a shared
    machine falls on both alike; the medians are what counts."""
    cmd = ["alexnet", "bench", "model", "--channels-last", "--steps", str(args.steps), "--warmup", "2"]
    runs = defaultdict(list)
    for i in range(args.allocator):
        for label in ("tuned", "untuned") if i % 2 == 0 else ("untuned", "tuned"):
            env = dict(os.environ)
            env.pop("ALEXNET_NO_MALLOC_TUNING", None)
            if label == "untuned":
                env["ALEXNET_NO_MALLOC_TUNING"] = "1"
            m = run_measured(cmd, env=env, timeout=args.timeout)
            line = m.output.strip().splitlines()[-1]
            ips = float(line.split("img/s")[0].split()[-1])
            runs[label].append(
                {"img_s": ips, "cpu_s": m.cpu_seconds, "faults": m.minor_faults, "rss_gb": m.peak.rss / GB}
            )
            print(
                f"# {label}: {ips:.1f} img/s, {m.cpu_seconds:.0f} CPU s, {m.minor_faults:,} page faults, "
                f"{m.peak.rss / GB:.2f} GB",
                file=sys.stderr,
                flush=True,
            )
    print(f"\n`{' '.join(cmd)}`, {args.allocator} runs each, alternating; medians:\n")
    print("| allocator | img/s | CPU s per run | page faults per run | peak RSS |")
    print("|---|---|---|---|---|")
    for label, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        each = ", ".join(f"{r['img_s']:.1f}" for r in rs)
        print(
            f"| {label} | {med['img_s']:.1f} (runs: {each}) | "
            f"{med['cpu_s']:.0f} | {med['faults']:,.0f} | {med['rss_gb']:.2f} GB |"
        )
    return [dict(label=k, runs=v) for k, v in runs.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--cases",
        nargs="+",
        default=["cifar32", "cifar256", "imagenet"],
        choices=["cifar32", "cifar256", "imagenet", "none"],
    )
    p.add_argument("--train-images", type=int, default=5120)
    p.add_argument("--test-images", type=int, default=1000)
    p.add_argument("--limit-batches", type=int, default=20, help="training batches (CIFAR cases)")
    p.add_argument("--limit-gb", type=float, default=6.0, help="kill a run whose tree RSS passes this")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument(
        "--allocator", type=int, default=0, metavar="N", help="tuned vs untuned bench runs, N each"
    )
    p.add_argument("--steps", type=int, default=8, help="timed steps per bench run (--allocator)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("command", nargs=argparse.REMAINDER, help="after --: one command to measure, nothing else")
    args = p.parse_args()
    args.cases = [c for c in args.cases if c != "none"]
    if args.command:  # one command, as a user runs it: its time and the peak of its process tree
        cmd = args.command[1:] if args.command[0] == "--" else args.command
        m = run_measured(cmd)
        print(m.output.rstrip().replace("\r", "\n").splitlines()[-1] if m.output.strip() else "")
        print(
            f"# CPU: {cpu_name()}; exit {m.returncode}, {m.seconds:.1f} s wall, {m.cpu_seconds:.0f} CPU s; "
            f"peak RSS summed over {m.peak.processes} processes {m.peak.rss / GB:.2f} GB, PSS {m.peak.pss / GB:.2f} GB, "
            f"main process {m.peak.main_rss / GB:.2f} GB"
        )
        raise SystemExit(m.returncode)
    cpu = cpu_name()
    print(f"# CPU: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory(prefix="alexnet-memory-") as tmp:
        out = {"cpu": cpu, "memory": memory_table(args, Path(tmp)) if args.cases else []}
        if args.allocator:
            out["allocator"] = allocator_table(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
