"""benchmarks/hostile_sweep.py's families of issue 18: files that reach outside themselves (HDF5
external storage, links and virtual datasets), pickles whose shared references or nesting stand
for more than the file holds, zip members padded to hide their real ratio, cards that nest or
repeat a field, names made of escape sequences, and mirrors and caches that misbehave."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hostile_files as hf  # noqa: E402

FORGED = "alexnet predict: error: forged"
ESCAPES = ["cat\x1b[2J", f"dog\n{FORGED}", "x\x1b]0;title\x07", "rtl\u202eexe.png", "bell\x07"]


def weights_variants(f: dict, out: Path):
    """(label, path) of hostile weights files of this issue's families."""
    from alexnet.interop.pretrained import load_pretrained

    out.mkdir(parents=True, exist_ok=True)
    fifo = hf.fifo(out / "fifo")
    secret = hf.write(out / "secret.bin", b"S" * 4096)
    target = hf.h5_target(out / "target.h5")
    for how, to in [
        ("external", secret),
        ("external", fifo),
        ("link", target),
        ("link", fifo),
        ("soft", target),
        ("virtual", target),
        ("filter", None),
    ]:
        label = f"h5-{how}-{'fifo' if to == fifo else 'file'}"
        p = hf.h5_reaching_out(out / label / "w.weights.h5", how, to)
        yield label, p
        yield (
            label + ".keras",
            hf.keras_zip(out / label / "w.keras", {"config.json": b"{}", "model.weights.h5": p.read_bytes()}),
        )
    yield (
        "keras-config-padded",
        hf.write(
            out / "padded.keras",
            hf.padded_zip(
                {"config.json": b" " * 3_000_000 + b"{}", "model.weights.h5": f["h5"].read_bytes()}, 40_000
            ),
        ),
    )
    yield "npy-dag-39", hf.write(out / "dag.npy", hf.npy_pickle(hf.dag(39)))
    yield "npy-dag-list", hf.write(out / "dagl.npy", hf.npy_pickle({"conv1": hf.dag(30, [1.0])}))
    yield (
        "npy-deep",
        hf.write(out / "deep.npy", hf.npy_bytes(hf.npy_header("|O", ()), hf.deep_pickle(100_000))),
    )
    yield (
        "npy-py2-small",
        hf.write(
            out / "py2.npy",
            hf.py2_npy(
                {
                    n.encode(): [np.ones((2, 2), np.float32), np.ones(2, np.float32)]
                    for n, _ in hf.ALEXNET_LAYERS
                }
            ),
        ),
    )
    yield "pt-dag-45", hf.torch_save(out / "dag.pt", {"w": hf.dag(45, torch.zeros(1))})
    yield "pt-deep", hf.torch_zip_pickle(out / "deep.pt", hf.deep_pickle(100_000))
    model, card = load_pretrained(f["pt"])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for label, change in [
        ("card-deep", {"model_kw": {"a": hf.deep(50)}}),
        ("card-kw-num-classes", {"model_kw": {"num_classes": card.num_classes}}),
        ("card-kw-in-channels", {"model_kw": {"in_channels": 3}}),
        ("card-escapes", {"classes": ESCAPES[:2], "source": ESCAPES[2]}),
    ]:
        yield label, hf.card_pt(out / f"{label}.pt", state, **{**card.to_dict(), **change})
    yield (
        "st-card-deep",
        hf.write(
            out / "deep.safetensors",
            hf.safetensors_bytes(
                {
                    "__metadata__": {"card": "[" * 100_000 + "]" * 100_000},
                    "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                },
                hf.ONE,
            ),
        ),
    )
    yield (
        "st-card-nan",
        hf.write(
            out / "nan.safetensors",
            hf.safetensors_bytes(
                {
                    "__metadata__": {
                        "card": '{"model": "cifar_convnet", "num_classes": NaN, "input_size": 32}'
                    },
                    "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                },
                hf.ONE,
            ),
        ),
    )


def index_variants(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    yield (
        "npz-padded",
        hf.write(
            out / "padded.npz",
            hf.padded_zip(
                hf.index_members(features=hf.npy_of(np.zeros((3, 1_000_000), np.float32))), 200_000
            ),
        ),
    )
    yield "npz-pickle-dag", hf.index(out / "dag.npz", features=hf.npy_pickle(hf.dag(39)))
    yield (
        "npz-paths-escapes",
        hf.index(
            out / "esc.npz", paths=hf.npy_of(np.array(ESCAPES[:3])), classes=hf.npy_of(np.array(ESCAPES[:2]))
        ),
    )


def data_variants(f: dict, out: Path):
    """Folders whose class and file names are escape sequences (and a CIFAR archive from Python 2)."""
    png = f["img"].read_bytes()
    d = out / "escapes"
    for split in ("train", "val"):
        for name in ESCAPES[:2]:
            hf.write(d / split / name / "0.png", png)
            hf.write(d / split / name / f"bad\n{FORGED}.png", b"not an image")
    yield "names-escapes", d
    g = np.random.default_rng(0)
    batch = hf.Py2().dumps(
        {
            b"data": g.integers(0, 256, (2, 3072), dtype=np.uint8),
            b"labels": [0, 1],
            b"filenames": [b"a.png", b"b.png"],
        }
    )
    meta = hf.Py2().dumps({b"label_names": [e.encode("utf-8", "surrogateescape") for e in ESCAPES[:2]] * 5})
    yield "cifar-py2-escapes", hf.cifar_archive(hf.dir(out / "py2") / "cifar-10-python.tar.gz", batch, meta)


JSON_VALUES = [
    '{"a": NaN}',
    '{"a": 1e999}',
    '{"a": -5}',
    "[" * 100_000,
    '{"a":' * 5000 + "1" + "}" * 5000,
    "fc8=nan",
    "fc8=-1",
]


# ---- mirrors and caches --------------------------------------------------------------------------
def download_cases(f: dict, root: Path):
    """(label, weights name) after setting up a hostile mirror or cache for it; the mirror and
    tight download limits stay in place until the generator ends."""
    from alexnet import download
    from alexnet.interop import hub

    mirror = hf.HostileMirror()
    saved = os.environ.get("ALEXNET_WEIGHTS_MIRROR"), download.LIMITS, dict(hub.WEIGHTS)
    os.environ["ALEXNET_WEIGHTS_MIRROR"] = mirror.url
    download.LIMITS = download.Limits(timeout=3, deadline=4, min_rate=1000, window=1)
    cache = hub.weights_dir()
    outside = root / "outside"
    try:
        for name in ("torchvision", "bvlc_alexnet.npy"):
            entry = hub.WEIGHTS[name]
            hub.WEIGHTS[name] = dataclasses.replace(entry, max_size=2 << 20)
            for how in ("huge", "endless", "trickle", "html"):
                _clean(cache)
                mirror.behaviour[entry.file] = how
                yield f"{name}-{how}", name
            mirror.behaviour.pop(entry.file)
            mirror.files[entry.file] = b"x" * 1000
            for kind in ("part", "lock", "sha256", "dest-dir", "part-dir"):
                _clean(cache)
                cache.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(outside, ignore_errors=True)
                hf.write(outside / "precious", b"precious")
                where = cache / (entry.file + ("" if kind.startswith("dest") else "." + kind.split("-")[0]))
                if kind.endswith("dir"):
                    where.mkdir()
                else:
                    os.symlink(outside / "precious" if kind != "lock" else outside / "made-by-lock", where)
                yield f"{name}-{kind}", name
            if (
                name == "bvlc_alexnet.npy"
            ):  # Python 2's layout (small shapes: refused by structure, run nothing)
                _clean(cache)
                mirror.files[entry.file] = hf.py2_npy(
                    {
                        n.encode(): [np.ones((2, 2), np.float32), np.ones(2, np.float32)]
                        for n, _ in hf.ALEXNET_LAYERS
                    }
                )
                yield f"{name}-py2", name
    finally:
        _clean(cache)
        mirror.close()
        if saved[0] is None:
            os.environ.pop("ALEXNET_WEIGHTS_MIRROR", None)
        else:
            os.environ["ALEXNET_WEIGHTS_MIRROR"] = saved[0]
        download.LIMITS = saved[1]
        hub.WEIGHTS.clear()
        hub.WEIGHTS.update(saved[2])


def _clean(cache: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        for p in cache.iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
