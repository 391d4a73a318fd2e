"""Every subcommand against hostile files and argument values, in one process under an
address-space limit; prints how many inputs were tried and each distinct failure: a generic
"(run with --debug ...)" line, a message that names neither the file nor the flag, a bad-input
exit status of 1, an out-of-memory, a hang, or a file written outside the designated output.

    python benchmarks/hostile_sweep.py [--only CMD] [--limit-gb 3] [--verbose] [--new]

--new runs only issue 18's families (benchmarks/hostile_reach.py: HDF5 reaching out, shared-
reference and deep pickles, padded zips, cards, escapes, Python 2 files, mirrors and caches, and
the JSON and NAME=X flag values), for a rerun in minutes instead of the whole sweep.

Issue 11 §5. tests/test_hostile.py keeps a fast corpus of the cases found here."""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402

import hostile_files as hf  # noqa: E402
import hostile_reach as reach  # noqa: E402
from alexnet.cli import main  # noqa: E402
from alexnet.errors import WORD_MAX, classify, one_line, shortened, shown  # noqa: E402
from hostile_corpus import build_corpus, mutations, pickle_dumps, weights_variants  # noqa: E402
from hostile_data import codes_variants, data_variants, index_variants, label_variants, run_variants  # noqa: E402


class Timeout(BaseException):
    pass


FIRED = [False]  # the alarm went off (torch turns a Timeout raised in its writer into a RuntimeError)
SLOW = ("train", "finetune", "experiment", "report")  # they train or evaluate whole networks
ERROR_LINE = re.compile(r"^alexnet [a-z]+(?: [a-z]+)?: error: ")


def _alarm(*_):
    FIRED[0] = True
    raise Timeout()


# ---- commands ----------------------------------------------------------------------------------
def commands(f: dict, o: Path) -> dict[str, list[list[str]]]:
    """Templates per input kind: {X} is replaced by the hostile path, {O} by a fresh output path."""
    data, w = str(f["data"]), str(f["pt"])
    small = [
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--resize",
        "32",
        "--crop",
        "32",
        "--quiet",
    ]
    return {
        "weights": [
            ["predict", str(f["img"]), "--weights", "{X}", "--quiet"],
            ["convert", "{X}", "{O}/out.pt"],
            ["evaluate", "--weights", "{X}", "--data", data, "--workers", "0", "--batch-size", "4"],
            [
                "features",
                "--weights",
                "{X}",
                "--data",
                data,
                "--layer",
                "pool5",
                "--out",
                "{O}/i.npz",
                "--workers",
                "0",
            ],
            ["visualize", "filters", "--weights", "{X}", "--out", "{O}/f.png"],
            ["finetune", "--weights", "{X}", "--data", data, "--run-dir", "{O}/run", *small],
        ],
        "index": [
            ["retrieve", "--index", "{X}", "--query", str(f["img"]), "--weights", w],
            ["retrieve", "--index", str(f["index"]), "--query-index", "{X}"],
            ["codes", "train", "--index", "{X}", "--bits", "8", "--epochs", "1", "--out", "{O}/c.pt"],
            ["visualize", "neighbors", str(f["img"]), "--index", "{X}", "--weights", w, "--out", "{O}/n.png"],
        ],
        "codes": [
            [
                "retrieve",
                "--index",
                str(f["index"]),
                "--query-index",
                str(f["index"]),
                "--metric",
                "hamming",
                "--codes",
                "{X}",
            ]
        ],
        "run": [
            ["report", "{X}", "--out", "{O}/r.html", "--workers", "0"],
            ["visualize", "curves", "{X}", "--out", "{O}/c.png"],
            ["train", "--resume", "{X}", "--quiet", "--workers", "0", "--epochs", "2"],
            ["evaluate", "--weights", "{X}/last.pt", "--data", data, "--workers", "0"],
        ],
        "stats": [
            [
                "train",
                "--model",
                "cifar_convnet",
                "--data",
                data,
                "--stats",
                "{X}",
                "--run-dir",
                "{O}/run",
                *small,
            ]
        ],
        "labels": [
            ["predict", str(f["img"]), "--weights", w, "--labels", "{X}", "--quiet"],
            ["convert", w, "{O}/o.pt", "--labels", "{X}"],
            ["evaluate", "--weights", w, "--data", str(f["flat"]), "--labels", "{X}", "--workers", "0"],
            [
                "stats",
                "--data",
                str(f["flat"]),
                "--labels",
                "{X}",
                "--out",
                "{O}/s.pt",
                "--workers",
                "0",
                "--resize",
                "32",
            ],
            ["prepare", str(f["flat"]), "{O}/sh", "--labels", "{X}", "--workers", "0", "--resize", "32"],
            [
                "train",
                "--model",
                "cifar_convnet",
                "--data",
                data,
                "--val-data",
                str(f["flat"]),
                "--labels",
                "{X}",
                "--run-dir",
                "{O}/run",
                *small,
            ],
        ],
        "mean": [["convert", w, "{O}/o.pt", "--mean", "{X}"]],
        "data": [
            ["stats", "--data", "{X}", "--out", "{O}/s.pt", "--workers", "0", "--resize", "32"],
            ["evaluate", "--weights", w, "--data", "{X}", "--workers", "0"],
            ["train", "--model", "cifar_convnet", "--data", "{X}", "--run-dir", "{O}/run", *small],
            ["prepare", "{X}", "{O}/sh", "--workers", "0", "--resize", "32"],
            [
                "features",
                "--weights",
                w,
                "--data",
                "{X}",
                "--layer",
                "pool5",
                "--out",
                "{O}/i.npz",
                "--workers",
                "0",
            ],
            [
                "bench",
                "data",
                "--data",
                "{X}",
                "--workers",
                "0",
                "--max-images",
                "4",
                "--epochs",
                "1",
                "--resize",
                "32",
                "--crop",
                "32",
            ],
        ],
        "config": [
            ["train", "--config", "{X}", "--data", data, "--run-dir", "{O}/run", "--quiet", "--workers", "0"]
        ],
        "image": [
            ["predict", "{X}", "--weights", w, "--quiet"],
            ["retrieve", "--index", str(f["index"]), "--query", "{X}", "--weights", w],
        ],
        "download": [
            ["weights", "--download", "{X}"],
            ["predict", str(f["img"]), "--weights", "{X}", "--quiet"],
        ],
    }


def arg_cases(f: dict) -> list[tuple[str, list[str], str]]:
    """(label, argv with {O}, the flag under test) for hostile argument values."""
    data, w, idx = str(f["data"]), str(f["pt"]), str(f["index"])
    small = [
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--resize",
        "32",
        "--crop",
        "32",
        "--quiet",
    ]
    bases = {
        "evaluate": (
            ["evaluate", "--weights", w, "--data", data, "--workers", "0"],
            ["--batch-size", "--workers", "--split", "--crops", "--device", "--out", "--ensemble"],
        ),
        "predict": (
            ["predict", str(f["img"]), "--weights", w, "--quiet"],
            ["--topk", "--model", "--crops", "--plot"],
        ),
        "retrieve": (["retrieve", "--index", idx, "--query-index", idx], ["--k", "--metric", "--out"]),
        "codes": (
            ["codes", "train", "--index", idx, "--out", "{O}/c.pt", "--epochs", "1"],
            ["--bits", "--epochs"],
        ),
        "summary": (["summary", "cifar_convnet"], ["--input-size", "--num-classes"]),
        "summary-alexnet": (["summary", "alexnet"], ["--input-size", "--num-classes"]),
        "stats": (
            ["stats", "--data", data, "--out", "{O}/s.pt", "--workers", "0"],
            ["--resize", "--batch-size", "--workers", "--split"],
        ),
        "prepare": (
            ["prepare", data, "{O}/sh", "--workers", "0", "--resize", "32"],
            ["--resize", "--shard-size", "--quality", "--workers"],
        ),
        "features": (
            [
                "features",
                "--weights",
                w,
                "--data",
                data,
                "--layer",
                "pool5",
                "--out",
                "{O}/i.npz",
                "--workers",
                "0",
            ],
            ["--batch-size", "--workers", "--split", "--out"],
        ),
        "report": (
            ["report", str(f["run"]), "--out", "{O}/r.html", "--workers", "0"],
            ["--max-images", "--workers", "--out"],
        ),
        "experiment": (
            [
                "experiment",
                "ablations",
                "--data",
                data,
                "--out",
                "{O}/x",
                "--epochs",
                "1",
                "--seeds",
                "1",
                "--images",
                "4",
                "--batch-size",
                "2",
                "--workers",
                "0",
            ],
            ["--epochs", "--images", "--seeds", "--batch-size", "--workers", "--target-error", "--lrs"],
        ),
        "bench-data": (
            [
                "bench",
                "data",
                "--data",
                data,
                "--workers",
                "0",
                "--max-images",
                "4",
                "--epochs",
                "1",
                "--resize",
                "32",
                "--crop",
                "32",
            ],
            ["--workers", "--batch-size", "--resize", "--crop", "--max-images", "--epochs"],
        ),
        "bench-model": (
            [
                "bench",
                "model",
                "--model",
                "cifar_convnet",
                "--batch-size",
                "2",
                "--steps",
                "1",
                "--warmup",
                "0",
            ],
            ["--batch-size", "--steps", "--warmup", "--device", "--model"],
        ),
        "train": (
            ["train", "--model", "cifar_convnet", "--data", data, "--run-dir", "{O}/run", *small],
            [
                "--epochs",
                "--batch-size",
                "--workers",
                "--resize",
                "--crop",
                "--lr",
                "--momentum",
                "--weight-decay",
                "--max-steps",
                "--log-every",
                "--checkpoint-every",
                "--limit-batches",
                "--std",
                "--model-kw",
                "--lr-mult",
                "--device",
                "--towers-on",
                "--run-dir",
                "--data",
                "--val-data",
                "--stats",
                "--seed",
                "--precision",
                "--gamma",
                "--patience",
                "--step-size",
                "--target-train-error",
                "--init-from",
                "--pixel-scale",
                "--steps-this-invocation",
                "--model",
                "--preset",
                "--pca-std",
            ],
        ),
        "finetune": (
            ["finetune", "--weights", w, "--data", data, "--run-dir", "{O}/run", *small],
            ["--train-layers", "--lr-mult"],
        ),
        "weights": (["weights"], ["--download"]),
        "convert": (["convert", w, "{O}/o.pt"], ["--model", "--mean", "--labels"]),
    }
    missing = str(f["data"].parent / "missing" / "x")  # inside the sweep's folder: root may create it
    values = [
        "-1",
        "0",
        "1000000000000",
        "x",
        "",
        "nan",
        "inf",
        "1e400",
        "-0",
        "2.5",
        "\udcff",
        missing,
        str(f["data"]),
        "[1]",
        '{"a": 1}',
        "cuda:9",
        "1,2,3",
        *reach.JSON_VALUES,
    ]
    cases = []
    for label, (base, flags) in bases.items():
        for flag in flags:
            for v in values:
                argv = list(base)
                if flag in argv:
                    i = argv.index(flag)
                    argv[i + 1] = v
                    if flag == "--std":
                        argv[i + 1 : i + 2] = [v, v, v]
                elif flag == "--std":
                    argv += [flag, v, v, v]
                else:
                    argv += [flag, v]
                cases.append((f"{label} {flag}={v!r}", argv, flag))
    cases += [
        ("summary model=''", ["summary", ""], "model"),
        ("summary model=x", ["summary", "x"], "model"),
        ("predict no images", ["predict", "--weights", w], "images"),
        (
            "retrieve both",
            ["retrieve", "--index", idx, "--query", str(f["img"]), "--query-index", idx],
            "--query",
        ),
        ("retrieve none", ["retrieve", "--index", idx], "--query"),
    ]
    return cases


# ---- one call --------------------------------------------------------------------------------
def snapshot(root: Path) -> dict:
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            try:
                st = os.lstat(p)
                out[p] = (st.st_size, st.st_mtime_ns, st.st_mode)
            except OSError:
                pass
    return out


def run_one(argv: list[str], watch: Path, allowed: Path | tuple, timeout: int | None = None) -> dict:
    before = snapshot(watch)
    err, out = io.StringIO(), io.StringIO()
    exc, tb, status, t0 = None, None, None, time.time()
    old = signal.signal(signal.SIGALRM, _alarm)
    FIRED[0] = False
    signal.alarm(timeout or (180 if argv[0] in SLOW else 30))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            status = main(argv)
    except SystemExit as e:  # argparse
        status = e.code if isinstance(e.code, int) else 2
    except Timeout:
        status, exc = "timeout", "Timeout"
    except BaseException as e:  # noqa: BLE001
        exc = e
        tb = traceback.extract_tb(e.__traceback__)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if FIRED[0]:
        status = "timeout"
    after = snapshot(watch)
    allowed = [str(a) for a in (allowed if isinstance(allowed, tuple) else (allowed,))]
    allowed.append(os.path.join(os.environ["ALEXNET_CACHE"], "kernels"))  # native kernels built on first use
    if "--resume" in argv:  # a resumed run writes into its own folder
        allowed.append(argv[argv.index("--resume") + 1])
    # folders above an output, whose entries (mtime) change as the folders below are made
    parents = {str(p) for a in allowed for p in Path(a.rstrip("/")).parents}
    changed = sorted(
        p
        for p in set(before) | set(after)
        if before.get(p) != after.get(p) and not p.startswith(tuple(map(str, allowed))) and p not in parents
    )
    msg = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""
    if isinstance(exc, BaseException):
        status, msg = classify(exc)
        msg = f"alexnet {argv[0]}: error: {one_line(msg)}"
    # what reached the terminal: an ESC or BEL from a name, or a second error line forged by a newline
    # (not in the traceback ALEXNET_DEBUG adds, which is for whoever debugs)
    printed = out.getvalue().splitlines() + [
        x for x in err.getvalue().splitlines() if x.startswith("alexnet ")
    ]
    printed += [msg] if exc is not None else []
    raw = (
        any(c in x for x in printed for c in "\x1b\x07\x9b")
        or sum(bool(ERROR_LINE.match(x)) for x in printed) > 1
    )
    return dict(status=status, msg=msg, exc=exc, tb=tb, changed=changed, seconds=time.time() - t0, raw=raw)


def judge(r: dict, names: list[str], run_time: bool = False) -> str | None:
    """The failure kind, or None when the answer is a clear line naming the thing (exit 2, or
    with `run_time`, where a failed download is a failure at run time, exit 1). A name may be
    shown escaped (a byte of a non-UTF-8 name as \\xff)."""
    names = names + [shown(n) for n in names] + [shortened(n) for n in names]  # as one_line shows them
    if r["status"] == "timeout":
        return "timeout"
    if r["raw"]:
        return "raw-escape"
    if r["changed"]:
        return "wrote-outside"
    if r["status"] == 0:
        return None
    msg = r["msg"]
    if "run with --debug" in msg:
        return "generic"
    if "out of memory" in msg:
        return "memory"
    if r["status"] not in (1, 2):
        return f"status-{r['status']}"
    if not any(n and n in msg for n in names):
        return "unnamed"
    if isinstance(r["exc"], KeyError) or "missing key '" in msg:
        return "keyerror"
    if r["status"] == 1 and not run_time and not isinstance(r["exc"], (RuntimeError, OSError)):
        return "status-1"
    return None


def site(r: dict) -> str:
    tb = r["tb"]
    if not tb:
        return "-"
    ours = [fr for fr in tb if "/alexnet/" in fr.filename]
    fr = ours[-1] if ours else tb[-1]
    return f"{Path(fr.filename).name}:{fr.lineno}"


def main_sweep() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help="one input kind (weights, index, data, ...) or 'args'")
    ap.add_argument("--limit-gb", type=float, default=3.0, help="address space above the start, in GB")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--new", action="store_true", help="only issue 18's families (hostile_reach.py)")
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="flags to leave out of the argument cases "
        "(--workers on code that does not bound it forks that many processes)",
    )
    opts = ap.parse_args()
    os.environ["ALEXNET_DEBUG"] = "1"  # exceptions reach the driver; classify() gives the line
    root = Path(tempfile.mkdtemp(prefix="alexnet-hostile-"))
    os.environ["ALEXNET_CACHE"] = str(root / "cache")
    os.environ["ALEXNET_DATA"] = str(root / "datahome")
    os.environ["ALEXNET_WEIGHTS_MIRROR"] = f"file://{root}/mirror"
    cwd = root / "cwd"
    cwd.mkdir()
    os.chdir(cwd)
    torch.set_num_threads(2)
    f = build_corpus(root / "corpus")
    size = (
        int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
    )
    limit = size + int(opts.limit_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    print(
        f"address space limit {limit / 2**30:.1f} GB (start {size / 2**30:.1f} GB); corpus in {root}",
        flush=True,
    )
    rng = random.Random(0)
    templates = commands(f, root / "o")
    kinds = {
        "weights": lambda: itertools.chain(
            *(mutations(f[k], root / "m" / k, rng) for k in ("pt", "st", "caffemodel", "npy", "h5", "keras")),
            weights_variants(f, root / "wv"),
            reach.weights_variants(f, root / "rw"),
        ),
        "index": lambda: itertools.chain(
            mutations(f["index"], root / "m" / "index", rng),
            index_variants(root / "iv"),
            reach.index_variants(root / "ri"),
        ),
        "codes": lambda: itertools.chain(
            mutations(f["codes"], root / "m" / "codes", rng), codes_variants(root / "cv")
        ),
        "run": lambda: itertools.chain(
            mutations(f["run"], root / "m" / "run", rng),
            ((lbl, p) for lbl, p in run_variants(f, root / "rv") if Path(p).is_dir()),
        ),
        "stats": lambda: itertools.chain(
            mutations(f["stats"], root / "m" / "stats", rng),
            ((lbl, p) for lbl, p in run_variants(f, root / "rv2") if not Path(p).is_dir()),
        ),
        "labels": lambda: itertools.chain(
            mutations(f["valtxt"], root / "m" / "valtxt", rng),
            mutations(f["synsets"], root / "m" / "syn", rng),
            label_variants(root / "lv"),
        ),
        "mean": lambda: itertools.chain(
            mutations(f["meanproto"], root / "m" / "mp", rng),
            mutations(f["meannpy"], root / "m" / "mn", rng),
            [
                (
                    "mean-huge",
                    _write(
                        root / "mv" / "huge.npy",
                        hf.npy_bytes(hf.npy_header("<f4", (3, 10**5, 10**5)), bytes(64)),
                    ),
                ),
                ("mean-proto-huge", _write(root / "mv" / "huge.binaryproto", hf.blob((1, 3, 10**5, 10**5)))),
                (
                    "mean-obj",
                    _write(
                        root / "mv" / "obj.npy", hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps({1: 2}))
                    ),
                ),
            ],
        ),
        "data": lambda: itertools.chain(
            mutations(f["data"], root / "m" / "data", rng),
            mutations(f["cifar"], root / "m" / "cifar", rng),
            mutations(f["shards"] / "train-000000.tar", root / "m" / "shards", rng),
            data_variants(f, root / "dv"),
            reach.data_variants(f, root / "rd"),
        ),
        "config": lambda: mutations(f["config"], root / "m" / "config", rng),
        "image": lambda: mutations(f["img"], root / "m" / "img", rng),
        "download": lambda: reach.download_cases(f, root),
    }
    if opts.new:  # issue 18's families only
        kinds = {
            "weights": lambda: reach.weights_variants(f, root / "rw"),
            "index": lambda: reach.index_variants(root / "ri"),
            "data": lambda: reach.data_variants(f, root / "rd"),
            "download": kinds["download"],
        }
    failures: dict[tuple, list] = {}
    per_kind: dict[str, int] = {}  # inputs tried, by kind of input
    tried = 0
    t0 = time.time()
    for kind, gen in kinds.items():
        if opts.only and opts.only not in (kind, "files"):
            continue
        for label, path in gen():
            for tpl in templates[kind]:
                o = root / "o" / f"{tried}"
                o.mkdir(parents=True)
                argv = [a.replace("{X}", str(path)).replace("{O}", str(o)) for a in tpl]
                r = run_one(argv, root, (o, root / "cache") if kind == "download" else o)
                tried += 1
                per_kind[kind] = per_kind.get(kind, 0) + 1
                if tried % 100 == 0:
                    print(
                        f"  {tried} inputs, {time.time() - t0:.0f} s, {len(failures)} distinct failures",
                        flush=True,
                    )
                names = [str(path), Path(str(path)).name, os.path.basename(str(path).rstrip("/"))]
                if kind == "download":  # a message names the file the name stands for
                    from alexnet.interop.hub import WEIGHTS

                    names.append(WEIGHTS[path].file)
                if not str(path):  # an empty spec: the message can only name the flag
                    names = [a for a in tpl if a.startswith("--")]
                fail = judge(r, names, run_time=kind == "download")
                if opts.verbose:
                    print(
                        f"[{kind}/{label}] {' '.join(argv[:2])}: {r['status']} {r['msg'][:160]}", flush=True
                    )
                if fail:
                    key = (fail, type(r["exc"]).__name__ if r["exc"] is not None else "-", site(r), argv[0])
                    failures.setdefault(key, []).append((kind, label, argv, r["msg"], r["changed"][:3]))
    if not opts.only or opts.only == "args":
        for label, argv, flag in arg_cases(f):
            if flag in opts.skip or opts.new and not any(repr(v) in label for v in reach.JSON_VALUES):
                continue
            o = root / "o" / f"{tried}"
            o.mkdir(parents=True)
            argv = [a.replace("{O}", str(o)) for a in argv]
            value = argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else ""
            out = os.path.abspath(value) if flag in ("--out", "--plot", "--run-dir") and value else o
            r = run_one(argv, root, out)
            tried += 1
            per_kind["args"] = per_kind.get("args", 0) + 1
            if tried % 100 == 0:
                print(
                    f"  {tried} inputs, {time.time() - t0:.0f} s, {len(failures)} distinct failures",
                    flush=True,
                )
            names = [flag, flag.lstrip("-").replace("-", "_")] + (
                [f"{value}:", f"{value!r}:"] if value else []
            )
            if len(value) > WORD_MAX:  # a value too long to quote in full is named by its shortened form
                names += [shortened(value), shortened(repr(value))]
            fail = judge(r, names)
            if opts.verbose:
                print(f"[args] {label}: {r['status']} {r['msg'][:160]}", flush=True)
            if fail:
                key = (fail, type(r["exc"]).__name__ if r["exc"] is not None else "-", site(r), argv[0])
                failures.setdefault(key, []).append(("args", label, argv, r["msg"], r["changed"][:3]))
    print(
        f"\n{tried} hostile inputs in {time.time() - t0:.0f} s; {len(failures)} distinct failures "
        f"({sum(len(v) for v in failures.values())} inputs)"
    )
    print("inputs by kind: " + ", ".join(f"{k} {n}" for k, n in per_kind.items()))
    for key, cases in sorted(failures.items(), key=lambda kv: kv[0]):
        kind, label, argv, msg, changed = cases[0]
        print(
            f"- {key[0]} {key[1]} at {key[2]} ({key[3]}, {len(cases)}x) e.g. [{kind}/{label}]: {msg[:300]}"
            + (f" changed {changed}" if changed else "")
        )
    if not opts.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


if __name__ == "__main__":
    raise SystemExit(main_sweep())
