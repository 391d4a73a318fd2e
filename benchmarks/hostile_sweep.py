"""Every subcommand against hostile files and argument values, in one process under an
address-space limit; prints how many inputs were tried and each distinct failure: a generic
"(run with --debug ...)" line, a message that names neither the file nor the flag, a bad-input
exit status of 1, an out-of-memory, a hang, or a file written outside the designated output.

    python benchmarks/hostile_sweep.py [--only CMD] [--limit-gb 3] [--verbose]

Issue 11 §5. tests/test_hostile.py keeps a fast corpus of the cases found here."""
from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import random
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hostile_files as hf  # noqa: E402
from alexnet.cli import main  # noqa: E402
from alexnet.errors import classify  # noqa: E402


class Timeout(BaseException):
    pass


def _alarm(*_):
    raise Timeout()


# ---- the valid corpus -------------------------------------------------------------------------
def write_image(path: Path, size=(36, 36), seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def build_corpus(root: Path) -> dict[str, Path]:
    from alexnet.card import Card
    from alexnet.interop.pretrained import save_pretrained
    from alexnet.models import create_model

    f = {}
    data = root / "data"
    for split in ("train", "val"):
        for c, cls in enumerate(("cat", "dog")):
            for i in range(3):
                write_image(data / split / cls / f"{i}.png", seed=c * 10 + i)
    f["data"] = data
    flat = root / "flat"
    for i in range(3):
        write_image(flat / f"{i}.png", seed=i)
    (root / "val.txt").write_text("".join(f"{i}.png {i % 2}\n" for i in range(3)))
    f["flat"], f["valtxt"] = flat, root / "val.txt"
    f["img"] = write_image(root / "q.png", seed=99)
    model = create_model("cifar_convnet", num_classes=2, seed=0)
    card = Card("cifar_convnet", 2, 32, 3, resize=32, classes=["cat", "dog"], source="sweep")
    f["pt"] = save_pretrained(model, card, root / "w.pt")
    f["st"] = save_pretrained(model, card, root / "w.safetensors")
    (root / "synsets.txt").write_text("n01 cat\nn02 dog\n")
    (root / "index.json").write_text(json_dumps({"0": ["n01", "cat"], "1": ["n02", "dog"]}))
    f["synsets"], f["classjson"] = root / "synsets.txt", root / "index.json"
    (root / "c.yaml").write_text("epochs: 1\nbatch_size: 2\n")
    f["config"] = root / "c.yaml"
    run = root / "run"
    quiet(["train", "--model", "cifar_convnet", "--data", str(data), "--run-dir", str(run), "--epochs", "1",
           "--batch-size", "2", "--workers", "0", "--resize", "32", "--crop", "32", "--quiet"])
    f["run"] = run
    quiet(["features", "--weights", str(f["pt"]), "--data", str(data), "--layer", "pool5",
           "--out", str(root / "index.npz"), "--workers", "0"])
    f["index"] = root / "index.npz"
    quiet(["codes", "train", "--index", str(f["index"]), "--bits", "8", "--epochs", "1", "--out", str(root / "codes.pt")])
    f["codes"] = root / "codes.pt"
    f["stats"] = run / "stats.pt"
    quiet(["prepare", str(data), str(root / "shards"), "--resize", "32", "--workers", "0"])
    f["shards"] = root / "shards"
    f["cifar"] = hf.cifar_archive(root / "cifar-10-python.tar.gz")
    f["idx"] = hf.idx_folder(root / "fashion")
    f["caffemodel"] = root / "w.caffemodel"
    f["caffemodel"].write_bytes(hf.small_caffemodel())
    f["npy"] = root / "w.npy"
    np.save(f["npy"], {n: [np.ones((2, 2), np.float32), np.ones(2, np.float32)] for n, _ in hf.ALEXNET_LAYERS},
            allow_pickle=True)
    f["meanproto"] = root / "mean.binaryproto"
    f["meanproto"].write_bytes(hf.blob((1, 3, 32, 32), np.full(3 * 32 * 32, 100, np.float32).tobytes()))
    f["meannpy"] = root / "mean.npy"
    np.save(f["meannpy"], np.full((3, 32, 32), 100, np.float32))
    f["h5"] = root / "w.weights.h5"
    f["h5"].write_bytes(hf.h5_bytes({"layers/conv2d/vars/0": (3, 3, 3, 4), "layers/conv2d/vars/1": (4,)}))
    f["keras"] = hf.keras_zip(root / "w.keras", {"config.json": b'{"config": {"layers": []}}',
                                                 "model.weights.h5": f["h5"].read_bytes()})
    return f


def json_dumps(x) -> str:
    import json

    return json.dumps(x)


def quiet(argv) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(argv)
    if status != 0:
        raise SystemExit(f"building the corpus failed: {argv}")
    return status


# ---- hostile variants of a file ---------------------------------------------------------------
def mutations(path: Path, out: Path, rng: random.Random):
    """(label, hostile path) for generic damage to any file (or folder)."""
    out.mkdir(parents=True, exist_ok=True)
    name = path.name

    def put(label, data: bytes | None = None, kind="file"):
        d = out / label
        d.mkdir(parents=True, exist_ok=True)
        p = d / name
        if kind == "dir":
            p.mkdir()
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "loop":
            os.symlink(name, p)
        else:
            p.write_bytes(data)
        return label, p

    if path.is_dir():
        yield put("dir-as-file", b"not a folder\n")
        yield put("empty-dir", kind="dir")
        yield put("fifo", kind="fifo")
        yield put("loop", kind="loop")
        return
    data = path.read_bytes()
    yield put("empty", b"")
    yield put("one-byte", data[:1])
    yield put("third", data[: len(data) // 3])
    yield put("all-but-one", data[:-1])
    for k in range(4):
        b = bytearray(data)
        for _ in range(1 + k * 3):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        yield put(f"flip{k}", bytes(b))
    yield put("random", bytes(rng.randrange(256) for _ in range(min(len(data), 4096))))
    yield put("text", "hello\n".encode())
    yield put("nonutf8", b"\xff\xfe\x00\x81" * 16)
    yield put("dir", kind="dir")
    yield put("fifo", kind="fifo")
    yield put("loop", kind="loop")
    odd = out / "odd-name"
    odd.mkdir(exist_ok=True)
    p = Path(os.fsdecode(bytes(odd) + b"/" + b"\xff" + name.encode()))
    p.write_bytes(data)
    yield "non-utf8-name", p


def card_variants():
    base = dict(model="cifar_convnet", num_classes=2, input_size=32, in_channels=3, resize=32,
                mean=[0.5, 0.5, 0.5], std=None, pixel_scale=255.0, channel_order="RGB", lrn="paper",
                classes=["cat", "dog"], source="x", model_kw={}, accuracy={})
    bad = {"num_classes": ["x", -1, 0, 150_000, 10**7, 10**12, 2.5, True, None, [2]],
           "input_size": [-5, 0, 10**6, "x", None], "in_channels": [0, 10**6, "x"],
           "resize": [-1, "x", 10**9], "mean": ["abc", [1, 2], {"a": 1}, [[["x"]]], None],
           "std": ["x", [0, 0, 0], [1, 2]], "pixel_scale": ["x", -1, None], "channel_order": ["XYZ", 5],
           "lrn": [5, "nope"], "classes": [{"a": 1}, ["a"], [1, 2], "cat,dog"], "model": ["nope", 5, None],
           "model_kw": ["x", {"groups": "x"}, {"bogus": 1}, {"dropout": 5}], "accuracy": ["x"], "source": [5]}
    for key, values in bad.items():
        for v in values:
            yield f"card-{key}-{str(v)[:12]}", {**base, key: v}
    yield "card-list", [1, 2]
    yield "card-str", "card"
    yield "card-missing", {"model": "cifar_convnet"}
    yield "card-empty", {}


def weights_variants(f: dict, out: Path):
    """Hostile weights files of every format: (label, path)."""
    import json

    from alexnet.fileio import save_pt
    from alexnet.interop.pretrained import load_pretrained

    out.mkdir(parents=True, exist_ok=True)
    model, card = load_pretrained(f["pt"])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for label, c in card_variants():
        p = out / f"{label}.pt"
        torch.save({"model": state, "card": c}, p)
        yield label + ".pt", p
        q = out / f"{label}.safetensors"
        from safetensors.torch import save_file

        save_file(state, str(q), metadata={"card": json.dumps(c)})
        yield label + ".safetensors", q
    p = out / "card-notjson.safetensors"
    from safetensors.torch import save_file

    save_file(state, str(p), metadata={"card": "{not json"})
    yield "card-notjson", p
    for label, obj in [("model-list", {"model": [1], "card": card.to_dict()}),
                       ("model-wrongshape", {"model": {k: torch.zeros(3) for k in state}, "card": card.to_dict()}),
                       ("model-missing", {"model": {}, "card": card.to_dict()}),
                       ("plain-list", [1, 2, 3]), ("plain-int", 5), ("plain-tensor", torch.zeros(3)),
                       ("dict-of-ints", {"a": 1}), ("arch-other", {"arch": "resnet50", "state_dict": state}),
                       ("arch-int", {"arch": 5, "state_dict": state}),
                       ("tv-wrong", {"features.0.weight": torch.zeros(3), "classifier.6.weight": torch.zeros(7)}),
                       ("ours-1d", {"classifier.fc8.weight": torch.zeros(3), "features.conv1.weight": torch.zeros(3),
                                    "features.conv2.weight": torch.zeros(3)}),
                       ("ours-huge-classes", {"classifier.fc8.weight": torch.zeros(0, 4096).expand(0, 4096),
                                              "features.conv1.weight": torch.zeros(96, 3, 11, 11),
                                              "features.conv2.weight": torch.zeros(256, 48, 5, 5)})]:
        p = out / f"{label}.pth"
        torch.save(obj, p)
        yield label, p
    p = out / "ck-with-digest.pt"
    save_pt({"model": state, "card": {**card.to_dict(), "num_classes": 150_000}}, p)
    yield "digest-card-150000", p
    # torch zip claims
    one = np.ones(4, np.float32).tobytes()
    for label, obj, rec, comp in [
        ("storage-huge", {"w": hf.Tensor(hf.Storage("0", 10**9), (10**9,))}, {"0": one}, 0),
        ("tensor-past-storage", {"w": hf.Tensor(hf.Storage("0", 4), (10**9,))}, {"0": one}, 0),
        ("negative-size", {"w": hf.Tensor(hf.Storage("0", 4), (-4,))}, {"0": one}, 0),
        ("huge-stride", {"w": hf.Tensor(hf.Storage("0", 4), (4,), (10**12,))}, {"0": one}, 0),
        ("missing-record", {"w": hf.Tensor(hf.Storage("9", 4), (4,))}, {"0": one}, 0),
        ("deflate-bomb", {"w": hf.Tensor(hf.Storage("0", 4), (4,))}, {"0": bytes(50_000_000)}, 8),
    ]:
        yield label, hf.torch_zip(out / f"{label}.pt", obj, rec, comp)
    p = out / "declared-huge.pt"
    hf.torch_zip(p, {"w": hf.Tensor(hf.Storage("0", 4), (4,))}, {"0": bytes(1000)}, 8)
    p.write_bytes(hf.set_zip_sizes(p.read_bytes(), "archive/data/0", 0xFFFFFFF0))
    yield "declared-huge", p
    # safetensors claims
    for label, raw in [
        ("st-header-huge", hf.safetensors_bytes(b"{}", header_len=1 << 60)),
        ("st-header-past-end", hf.safetensors_bytes(b"{}", header_len=1000)),
        ("st-not-json", hf.safetensors_bytes(b"{not json")),
        ("st-offsets-past-end", hf.safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}})),
        ("st-shape-huge", hf.safetensors_bytes({"w": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 16]}}, bytes(16))),
        ("st-dtype", hf.safetensors_bytes({"w": {"dtype": "Q99", "shape": [4], "data_offsets": [0, 16]}}, bytes(16))),
        ("st-neg", hf.safetensors_bytes({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, bytes(16))),
        ("st-list", hf.safetensors_bytes([1, 2])),
        ("st-meta-int", hf.safetensors_bytes({"__metadata__": {"card": 5}})),
        ("st-one-tensor", hf.safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(16))),
    ]:
        p = out / f"{label}.safetensors"
        p.write_bytes(raw)
        yield label, p
    # caffemodels
    n = np.ones(4, np.float32).tobytes()
    for label, raw in [
        ("caffe-neg-dims", hf.caffemodel_bytes([(a, t, [hf.blob((-1, 4), n)]) for a, t in hf.ALEXNET_LAYERS])),
        ("caffe-huge-dims", hf.caffemodel_bytes([(a, t, [hf.blob((10**9, 10**9), n)]) for a, t in hf.ALEXNET_LAYERS])),
        ("caffe-huge-nodata", hf.caffemodel_bytes([(a, t, [hf.blob((10**6, 10**4))]) for a, t in hf.ALEXNET_LAYERS])),
        ("caffe-legacy-huge", hf.caffemodel_bytes([(a, t, [hf.blob(None, n, legacy=dict(num=2**31 - 1, channels=2**31 - 1,
                                                                                        height=2**31 - 1, width=-5))])
                                                   for a, t in hf.ALEXNET_LAYERS])),
        ("caffe-one-blob", hf.caffemodel_bytes([(a, t, [hf.blob((4,), n)]) for a, t in hf.ALEXNET_LAYERS])),
        ("caffe-many-dims", hf.caffemodel_bytes([(a, t, [hf.blob((1,) * 40, n[:4])]) for a, t in hf.ALEXNET_LAYERS])),
        ("caffe-no-layers", b""),
        ("caffe-fc8-classes", hf.small_caffemodel((150_000, 1), np.ones(150_000, np.float32).tobytes())),
    ]:
        p = out / f"{label}.caffemodel"
        p.write_bytes(raw)
        yield label, p
    # .npy dicts
    for label, raw in [
        ("npy-reconstruct-nodata", hf.npy_bytes(hf.npy_header("|O", ()), hf.reconstruct_without_data())),
        ("npy-plain-huge", hf.npy_bytes(hf.npy_header("<f4", (10**9,)), bytes(100))),
        ("npy-header-notdict", hf.npy_bytes("[1, 2, 3]")),
        ("npy-header-garbage", hf.npy_bytes("{'descr': |O")),
        ("npy-header-len", b"\x93NUMPY\x01\x00\xff\xff{'descr'"),
        ("npy-v3", hf.npy_bytes(hf.npy_header("|O", ()), b"", version=3)),
        ("npy-obj-huge-shape", hf.npy_bytes(hf.npy_header("|O", (10**9,)), pickle_dumps({"conv1": 1}))),
        ("npy-layer-int", hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps({n: 1 for n, _ in hf.ALEXNET_LAYERS}))),
        ("npy-layer-strs", hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps({n: ["a", "b"] for n, _ in hf.ALEXNET_LAYERS}))),
        ("npy-layer-1d", hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps(
            {n: [np.ones(3, np.float32), np.ones(3, np.float32)] for n, _ in hf.ALEXNET_LAYERS}))),
        ("npy-layer-3d", hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps(
            {n: [np.ones((2, 2, 2), np.float32), np.ones(2, np.float32)] for n, _ in hf.ALEXNET_LAYERS}))),
        ("npy-fc6-9216", hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps(
            {n: [np.ones((9216, 3) if n == "fc6" else (2, 2), np.float32), np.ones(2, np.float32)]
             for n, _ in hf.ALEXNET_LAYERS}))),
        ("npy-keys-int", hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps({1: [np.ones(2), np.ones(2)]}))),
        ("npy-list", hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps([1, 2]))),
        ("npy-dict-dict-missing", hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps({"conv1": {"w": 1}}))),
    ]:
        p = out / f"{label}.npy"
        p.write_bytes(raw)
        yield label, p
    # Keras
    h5 = f["h5"].read_bytes()
    for label, members, comp in [
        ("keras-bomb", {"config.json": b"{}", "model.weights.h5": bytes(60_000_000)}, 8),
        ("keras-config-bomb", {"config.json": b" " * 60_000_000, "model.weights.h5": h5}, 8),
        ("keras-config-types", {"config.json": b'{"config": {"layers": {"a": 1}}}', "model.weights.h5": h5}, 8),
        ("keras-config-list", {"config.json": b'[1, 2]', "model.weights.h5": h5}, 8),
        ("keras-config-layers", {"config.json": b'{"config": {"layers": [1, "x", {"config": 5}]}}', "model.weights.h5": h5}, 8),
        ("keras-no-weights", {"config.json": b"{}"}, 8),
        ("keras-weights-garbage", {"config.json": b"{}", "model.weights.h5": b"garbage"}, 8),
    ]:
        yield label, hf.keras_zip(out / f"{label}.keras", members, comp)
    p = out / "keras-declared-huge.keras"
    hf.keras_zip(p, {"config.json": b"{}", "model.weights.h5": bytes(1000)})
    p.write_bytes(hf.set_zip_sizes(p.read_bytes(), "model.weights.h5", 0xFFFFFFF0))
    yield "keras-declared-huge", p
    for label, ds, attrs in [
        ("h5-huge-declared", {"layers/conv2d/vars/0": (10**5, 10**5, 1, 1), "layers/conv2d/vars/1": (1,)}, None),
        ("h5-medium-declared", {"layers/conv2d/vars/0": (10000, 10000, 1, 1), "layers/conv2d/vars/1": (1,)}, None),
        ("h5-weird", {"layers/conv2d/vars/0": (3,), "layers/conv2d/vars/1": (3, 3)}, None),
        ("h5-legacy-names", {"a/b": (3,)}, {"layer_names": [b"zzz"]}),
        ("h5-config-bad", {"a/b": (3,)}, {"model_config": "{not json"}),
        ("h5-config-int", {"layers/x/vars/0": (3,)}, {"model_config": "5"}),
    ]:
        p = out / f"{label}.weights.h5"
        p.write_bytes(hf.h5_bytes(ds, attrs))
        yield label, p


def pickle_dumps(obj) -> bytes:
    import pickle

    return pickle.dumps(obj, protocol=2)


def index_variants(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    big = hf.npy_bytes(hf.npy_header("<f4", (10**9, 4096)), bytes(64))
    for label, members, comp in [
        ("features-huge", hf.index_members(features=big), 0),
        ("features-bomb", hf.index_members(features=hf.npy_of(np.zeros((8000, 4096), np.float32))), 8),
        ("features-str", hf.index_members(features=hf.npy_of(np.array(["a", "b"]))), 0),
        ("features-1d", hf.index_members(features=hf.npy_of(np.ones(3, np.float32))), 0),
        ("features-obj", hf.index_members(features=hf.npy_bytes(hf.npy_header("|O", (3,)), pickle_dumps([1, 2, 3]))), 0),
        ("labels-short", hf.index_members(labels=hf.npy_of(np.zeros(1, np.int64))), 0),
        ("labels-float", hf.index_members(labels=hf.npy_of(np.zeros(3, np.float32))), 0),
        ("paths-missing", hf.index_members(paths=None), 0),
        ("layer-missing", hf.index_members(layer=None), 0),
        ("layer-bogus", hf.index_members(layer=hf.npy_of(np.array("fc99"))), 0),
        ("indices-out", hf.index_members(indices=hf.npy_of(np.array([10**9, -5, 2]))), 0),
        ("classes-int", hf.index_members(classes=hf.npy_of(np.array([1, 2]))), 0),
        ("weights-missing", hf.index_members(weights=None), 0),
        ("nan-features", hf.index_members(features=hf.npy_of(np.full((3, 4), np.nan, np.float32))), 0),
        ("empty-features", hf.index_members(n=0), 0),
        ("dim-mismatch", hf.index_members(features=hf.npy_of(np.ones((3, 7), np.float32))), 0),
    ]:
        p = out / f"{label}.npz"
        p.write_bytes(hf.npz_bytes(members, comp))
        yield label, p
    p = out / "declared-huge.npz"
    p.write_bytes(hf.set_zip_sizes(hf.npz_bytes(hf.index_members(), 8), "features.npy", 0xFFFFFFF0))
    yield "declared-huge", p


def codes_variants(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    for label, obj in [("dim-huge", {"state": {}, "dim": 10**9, "bits": 8, "hidden": 1024}),
                       ("bits-huge", {"state": {}, "dim": 4, "bits": 10**9, "hidden": 1024}),
                       ("hidden-huge", {"state": {}, "dim": 4, "bits": 8, "hidden": 10**9}),
                       ("dim-str", {"state": {}, "dim": "x", "bits": 8, "hidden": 1024}),
                       ("dim-neg", {"state": {}, "dim": -4, "bits": 8, "hidden": 1024}),
                       ("state-wrong", {"state": {"a": torch.zeros(1)}, "dim": 4, "bits": 8, "hidden": 16}),
                       ("list", [1]), ("missing", {"dim": 4})]:
        p = out / f"{label}.pt"
        torch.save(obj, p)
        yield label, p


def run_variants(f: dict, out: Path):
    """Copies of the run folder with one hostile file each (checkpoints carry valid digests)."""
    from alexnet.fileio import load_pt, save_pt

    out.mkdir(parents=True, exist_ok=True)
    ck = load_pt(f["run"] / "last.pt")

    def copy(label):
        d = out / label
        shutil.copytree(f["run"], d)
        return d

    for label, text in [("config-list", "- 1\n"), ("config-bomb", "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))),
                        ("config-notyaml", "a: [\n"), ("config-nodata", "model: alexnet\n"),
                        ("config-data-int", "data: 5\nval_data: [1]\n")]:
        d = copy(label)
        (d / "config.yaml").write_text(text)
        yield label, d
    for label, text in [("metrics-garbage", "epoch,train_loss\nx,y\n"), ("metrics-binary", "\xff\x00\x01"),
                        ("metrics-nocols", "a,b\n1,2\n"), ("metrics-ragged", "epoch,train_top1_err\n1\n2,3,4,5\n")]:
        d = copy(label)
        (d / "metrics.csv").write_text(text, errors="surrogateescape")
        yield label, d
    d = copy("summary-garbage")
    (d / "summary.json").write_text("{nope")
    yield "summary-garbage", d
    for label, change in [
        ("ck-card-150000", lambda c: c["card"].update(num_classes=150_000)),
        ("ck-card-str", lambda c: c.update(card="x")),
        ("ck-model-shapes", lambda c: c.update(model={k: torch.zeros(1) for k in c["model"]})),
        ("ck-config-types", lambda c: c["config"].update(lr="fast", epochs=-5)),
        ("ck-config-list", lambda c: c.update(config=[1])),
        ("ck-config-rundir", lambda c: c["config"].update(run_dir="/etc")),
        ("ck-rng-garbage", lambda c: c.update(rng=[{"python": 5}])),
        ("ck-rng-empty", lambda c: c.update(rng=[])),
        ("ck-optimizer", lambda c: c.update(optimizer={"state": {}, "param_groups": [{"params": [99]}]})),
        ("ck-schedule", lambda c: c.update(schedule=[1])),
        ("ck-epoch-str", lambda c: c.update(epoch="x", step=-1)),
        ("ck-world", lambda c: c.update(world="x")),
        ("ck-tally", lambda c: c.update(epoch_tally=[torch.zeros(10**6)])),
    ]:
        d = copy(label)
        c = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ck.items()}
        c["card"], c["config"] = dict(ck["card"]), dict(ck["config"])
        change(c)
        save_pt(c, d / "last.pt")
        save_pt(c, d / "best.pt")
        yield label, d
    for label, stats in [("stats-empty", {}), ("stats-shapes", {"mean": torch.zeros(7), "std": torch.zeros(7),
                                                                "eigval": torch.zeros(7), "eigvec": torch.zeros(2),
                                                                "mean_image": torch.zeros(2)}),
                         ("stats-list", [1])]:
        p = out / f"{label}.pt"
        save_pt(stats, p)
        yield label, p


def label_variants(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    for label, text in [("cls-huge", "0.png 1000000000000\n1.png 0\n2.png 0\n"), ("cls-neg", "0.png -1\n1.png 0\n2.png 0\n"),
                        ("cls-word", "0.png cat\n"), ("cls-one-col", "0.png\n"), ("cls-missing", "9.png 0\n"),
                        ("cls-float", "0.png 1.5\n1.png 0\n2.png 0\n"), ("cls-huge-line", "x" * 2_000_000 + " 1\n"),
                        ("syn-one-col", "n01\n"), ("syn-empty", ""), ("json-list", "[1, 2]"), ("json-int-values", '{"0": 5, "1": 6}'),
                        ("json-short", '{"0": ["n01"]}'), ("json-gaps", '{"0": ["a", "b"], "5": ["c", "d"]}'),
                        ("json-bad", "{")]:
        for ext in (".txt", ".json"):
            p = out / f"{label}{ext}"
            p.write_text(text)
            yield label + ext, p
    p = out / "binary.txt"
    p.write_bytes(b"\xff\xfe\x00" * 100)
    yield "binary", p


def data_variants(f: dict, out: Path):
    """Hostile datasets: shards, CIFAR archives, IDX folders, folders, brace specs."""
    out.mkdir(parents=True, exist_ok=True)
    png = f["img"].read_bytes()
    for label, members, declared in [
        ("cls-huge", {"a.png": png, "a.cls": b"1000000000000"}, None),
        ("cls-neg", {"a.png": png, "a.cls": b"-7"}, None),
        ("cls-text", {"a.png": png, "a.cls": b"cat"}, None),
        ("dotdot", {"../evil.png": png, "../evil.cls": b"0"}, None),
        ("absolute", {"/tmp/evil.png": png}, None),
        ("size-claim", {"x/a.png": png, "x/b.png": png}, {"x/a.png": 10**10}),
        ("no-images", {"a.txt": b"x"}, None),
        ("flat-images", {"a.png": png}, None),
    ]:
        d = out / f"shards-{label}"
        d.mkdir()
        (d / "train-000000.tar").write_bytes(hf.tar_bytes(members, declared))
        yield label, d / "train-000000.tar"
        yield label + "-folder", d
    d = out / "shards-classes"
    shutil.copytree(f["shards"], d)
    (d / "classes.txt").write_bytes(b"\xff\xfe" * 10)
    yield "classes-nonutf8", d
    d = out / "shards-classes-short"
    shutil.copytree(f["shards"], d)
    (d / "classes.txt").write_text("only-one\n")
    yield "classes-short", d
    for label, batch, meta, mode in [
        ("cifar-labels-huge", hf.cifar_batch(2, [10**12, 0]), None, "w:gz"),
        ("cifar-labels-neg", hf.cifar_batch(2, [-1, 0]), None, "w:gz"),
        ("cifar-labels-str", hf.cifar_batch(2, ["a", "b"]), None, "w:gz"),
        ("cifar-data-short", hf.cifar_batch(2, data=bytes(100)), None, "w:gz"),
        ("cifar-reconstruct", hf.reconstruct_without_data(), None, "w:gz"),
        ("cifar-meta-bad", None, b"garbage", "w:gz"),
        ("cifar-meta-int", None, pickle_dumps({b"label_names": 5}), "w:gz"),
        ("cifar-not-dict", pickle_dumps([1, 2]), None, "w:gz"),
        ("cifar-plain-tar", None, None, "w"),
    ]:
        d = out / label
        d.mkdir()
        yield label, hf.cifar_archive(d / "cifar-10-python.tar.gz", batch, meta, mode)
    d = out / "cifar-bomb"
    d.mkdir()
    (d / "cifar-10-python.tar.gz").write_bytes(hf.gzip_bomb(200_000_000))
    yield "cifar-gzip-bomb", d / "cifar-10-python.tar.gz"
    d = out / "cifar-member-bomb"
    d.mkdir()
    raw = hf.tar_bytes({"cifar-10-batches-py/data_batch_1": bytes(150_000_000)})
    import gzip

    (d / "cifar-10-python.tar.gz").write_bytes(gzip.compress(raw, 9))
    yield "cifar-member-bomb", d / "cifar-10-python.tar.gz"
    for label, kw in [("idx-dims-huge", dict(images=(10**6, 10**4, 10**4), image_body=b"")),
                      ("idx-dims-mismatch", dict(images=(2, 28, 28), image_body=bytes(5))),
                      ("idx-labels-huge", dict(label_values=(200, 0))),
                      ("idx-labels-count", dict(labels=(1,), label_values=(0,))),
                      ("idx-ndim-0", dict(images=(), image_body=b"")),
                      ("idx-plain", dict(gz=False)),
                      ("idx-bomb", dict(images=(2, 28, 28), image_body=bytes(300_000_000)))]:
        yield label, hf.idx_folder(out / label, **kw)
    d = out / "idx-ndim"
    d.mkdir()
    for prefix in ("train", "t10k"):
        (d / f"{prefix}-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 250]) + bytes(20))
        (d / f"{prefix}-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 0, 1]))
    yield "idx-ndim-250", d
    d = out / "fifo-folder"
    shutil.copytree(f["data"], d)
    os.mkfifo(d / "train" / "cat" / "9.png")
    yield "fifo-image", d
    d = out / "loop-folder"
    shutil.copytree(f["data"], d)
    os.symlink("../cat", d / "train" / "cat" / "loop")
    yield "dir-loop", d
    d = out / "dir-image"
    shutil.copytree(f["data"], d)
    (d / "train" / "cat" / "9.png").mkdir()
    yield "dir-named-image", d
    d = out / "garbage-image"
    shutil.copytree(f["data"], d)
    (d / "train" / "cat" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    yield "garbage-image", d
    yield "braces-millions", f"{out}/train-{{0..9999999}}.tar"
    yield "braces-nested", f"{out}/t-{{0..999}}-{{0..999}}.tar"
    yield "braces-reversed", f"{out}/t-{{9..0}}.tar"
    yield "braces-huge-int", f"{out}/t-{{0..{10**30}}}.tar"
    yield "glob-nothing", f"{out}/nothing-*.tar"
    yield "empty-spec", ""


# ---- commands ----------------------------------------------------------------------------------
def commands(f: dict, o: Path) -> dict[str, list[list[str]]]:
    """Templates per input kind: {X} is replaced by the hostile path, {O} by a fresh output path."""
    data, w = str(f["data"]), str(f["pt"])
    small = ["--epochs", "1", "--batch-size", "2", "--workers", "0", "--resize", "32", "--crop", "32", "--quiet"]
    return {
        "weights": [["predict", str(f["img"]), "--weights", "{X}", "--quiet"], ["convert", "{X}", "{O}/out.pt"],
                    ["evaluate", "--weights", "{X}", "--data", data, "--workers", "0", "--batch-size", "4"],
                    ["features", "--weights", "{X}", "--data", data, "--layer", "pool5", "--out", "{O}/i.npz",
                     "--workers", "0"],
                    ["visualize", "filters", "--weights", "{X}", "--out", "{O}/f.png"],
                    ["finetune", "--weights", "{X}", "--data", data, "--run-dir", "{O}/run", *small]],
        "index": [["retrieve", "--index", "{X}", "--query", str(f["img"]), "--weights", w],
                  ["retrieve", "--index", str(f["index"]), "--query-index", "{X}"],
                  ["codes", "train", "--index", "{X}", "--bits", "8", "--epochs", "1", "--out", "{O}/c.pt"],
                  ["visualize", "neighbors", str(f["img"]), "--index", "{X}", "--weights", w, "--out", "{O}/n.png"]],
        "codes": [["retrieve", "--index", str(f["index"]), "--query-index", str(f["index"]), "--metric", "hamming",
                   "--codes", "{X}"]],
        "run": [["report", "{X}", "--out", "{O}/r.html", "--workers", "0"], ["visualize", "curves", "{X}", "--out", "{O}/c.png"],
                ["train", "--resume", "{X}", "--quiet", "--workers", "0", "--epochs", "2"],
                ["evaluate", "--weights", "{X}/last.pt", "--data", data, "--workers", "0"]],
        "stats": [["train", "--model", "cifar_convnet", "--data", data, "--stats", "{X}", "--run-dir", "{O}/run", *small]],
        "labels": [["predict", str(f["img"]), "--weights", w, "--labels", "{X}", "--quiet"],
                   ["convert", w, "{O}/o.pt", "--labels", "{X}"],
                   ["evaluate", "--weights", w, "--data", str(f["flat"]), "--labels", "{X}", "--workers", "0"],
                   ["stats", "--data", str(f["flat"]), "--labels", "{X}", "--out", "{O}/s.pt", "--workers", "0", "--resize", "32"],
                   ["prepare", str(f["flat"]), "{O}/sh", "--labels", "{X}", "--workers", "0", "--resize", "32"],
                   ["train", "--model", "cifar_convnet", "--data", data, "--val-data", str(f["flat"]), "--labels", "{X}",
                    "--run-dir", "{O}/run", *small]],
        "mean": [["convert", w, "{O}/o.pt", "--mean", "{X}"]],
        "data": [["stats", "--data", "{X}", "--out", "{O}/s.pt", "--workers", "0", "--resize", "32"],
                 ["evaluate", "--weights", w, "--data", "{X}", "--workers", "0"],
                 ["train", "--model", "cifar_convnet", "--data", "{X}", "--run-dir", "{O}/run", *small],
                 ["prepare", "{X}", "{O}/sh", "--workers", "0", "--resize", "32"],
                 ["features", "--weights", w, "--data", "{X}", "--layer", "pool5", "--out", "{O}/i.npz", "--workers", "0"],
                 ["bench", "data", "--data", "{X}", "--workers", "0", "--max-images", "4", "--epochs", "1", "--resize", "32",
                  "--crop", "32"]],
        "config": [["train", "--config", "{X}", "--data", data, "--run-dir", "{O}/run", "--quiet", "--workers", "0"]],
        "image": [["predict", "{X}", "--weights", w, "--quiet"],
                  ["retrieve", "--index", str(f["index"]), "--query", "{X}", "--weights", w]],
    }


def arg_cases(f: dict) -> list[tuple[str, list[str], str]]:
    """(label, argv with {O}, the flag under test) for hostile argument values."""
    data, w, idx = str(f["data"]), str(f["pt"]), str(f["index"])
    small = ["--epochs", "1", "--batch-size", "2", "--workers", "0", "--resize", "32", "--crop", "32", "--quiet"]
    bases = {
        "evaluate": (["evaluate", "--weights", w, "--data", data, "--workers", "0"],
                     ["--batch-size", "--workers", "--split", "--crops", "--device", "--out", "--ensemble"]),
        "predict": (["predict", str(f["img"]), "--weights", w, "--quiet"], ["--topk", "--model", "--crops", "--plot"]),
        "retrieve": (["retrieve", "--index", idx, "--query-index", idx], ["--k", "--metric", "--out"]),
        "codes": (["codes", "train", "--index", idx, "--out", "{O}/c.pt", "--epochs", "1"], ["--bits", "--epochs"]),
        "summary": (["summary", "cifar_convnet"], ["--input-size", "--num-classes"]),
        "summary-alexnet": (["summary", "alexnet"], ["--input-size", "--num-classes"]),
        "stats": (["stats", "--data", data, "--out", "{O}/s.pt", "--workers", "0"],
                  ["--resize", "--batch-size", "--workers", "--split"]),
        "prepare": (["prepare", data, "{O}/sh", "--workers", "0", "--resize", "32"],
                    ["--resize", "--shard-size", "--quality", "--workers"]),
        "features": (["features", "--weights", w, "--data", data, "--layer", "pool5", "--out", "{O}/i.npz", "--workers", "0"],
                     ["--batch-size", "--workers", "--split", "--out"]),
        "report": (["report", str(f["run"]), "--out", "{O}/r.html", "--workers", "0"], ["--max-images", "--workers", "--out"]),
        "experiment": (["experiment", "ablations", "--data", data, "--out", "{O}/x", "--epochs", "1", "--seeds", "1",
                        "--images", "4", "--batch-size", "2", "--workers", "0"],
                       ["--epochs", "--images", "--seeds", "--batch-size", "--workers", "--target-error", "--lrs"]),
        "bench-data": (["bench", "data", "--data", data, "--workers", "0", "--max-images", "4", "--epochs", "1",
                        "--resize", "32", "--crop", "32"],
                       ["--workers", "--batch-size", "--resize", "--crop", "--max-images", "--epochs"]),
        "bench-model": (["bench", "model", "--model", "cifar_convnet", "--batch-size", "2", "--steps", "1", "--warmup", "0"],
                        ["--batch-size", "--steps", "--warmup", "--device", "--model"]),
        "train": (["train", "--model", "cifar_convnet", "--data", data, "--run-dir", "{O}/run", *small],
                  ["--epochs", "--batch-size", "--workers", "--resize", "--crop", "--lr", "--momentum", "--weight-decay",
                   "--max-steps", "--log-every", "--checkpoint-every", "--limit-batches", "--std", "--model-kw", "--lr-mult",
                   "--device", "--towers-on", "--run-dir", "--data", "--val-data", "--stats", "--seed", "--precision",
                   "--gamma", "--patience", "--step-size", "--target-train-error", "--init-from", "--pixel-scale",
                   "--steps-this-invocation", "--model", "--preset", "--pca-std"]),
        "finetune": (["finetune", "--weights", w, "--data", data, "--run-dir", "{O}/run", *small],
                     ["--train-layers", "--lr-mult"]),
        "weights": (["weights"], ["--download"]),
        "convert": (["convert", w, "{O}/o.pt"], ["--model", "--mean", "--labels"]),
    }
    missing = str(f["data"].parent / "missing" / "x")  # inside the sweep's folder: root may create it
    values = ["-1", "0", "1000000000000", "x", "", "nan", "inf", "1e400", "-0", "2.5", "\udcff", missing,
              str(f["data"]), "[1]", "{\"a\": 1}", "cuda:9", "1,2,3"]
    cases = []
    for label, (base, flags) in bases.items():
        for flag in flags:
            for v in values:
                argv = list(base)
                if flag in argv:
                    i = argv.index(flag)
                    argv[i + 1] = v
                    if flag == "--std":
                        argv[i + 1: i + 2] = [v, v, v]
                elif flag == "--std":
                    argv += [flag, v, v, v]
                else:
                    argv += [flag, v]
                cases.append((f"{label} {flag}={v!r}", argv, flag))
    cases += [("summary model=''", ["summary", ""], "model"), ("summary model=x", ["summary", "x"], "model"),
              ("predict no images", ["predict", "--weights", w], "images"),
              ("retrieve both", ["retrieve", "--index", idx, "--query", str(f["img"]), "--query-index", idx], "--query"),
              ("retrieve none", ["retrieve", "--index", idx], "--query")]
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


def run_one(argv: list[str], watch: Path, allowed: Path, timeout: int = 30) -> dict:
    before = snapshot(watch)
    err, out = io.StringIO(), io.StringIO()
    exc, tb, status, t0 = None, None, None, time.time()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
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
    after = snapshot(watch)
    allowed = [str(allowed)]
    if "--resume" in argv:  # a resumed run writes into its own folder
        allowed.append(argv[argv.index("--resume") + 1])
    changed = sorted(p for p in set(before) | set(after)
                     if before.get(p) != after.get(p) and not p.startswith(tuple(map(str, allowed))))
    msg = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""
    if isinstance(exc, BaseException):
        status, msg = classify(exc)
        msg = f"alexnet {argv[0]}: error: {msg}"
    return dict(status=status, msg=msg, exc=exc, tb=tb, changed=changed, seconds=time.time() - t0)


def judge(r: dict, names: list[str]) -> str | None:
    """The failure kind, or None when the answer is a clear line naming the thing."""
    if r["status"] == "timeout":
        return "timeout"
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
    if r["status"] == 1 and not isinstance(r["exc"], (RuntimeError, OSError)):
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
    ap.add_argument("--skip", nargs="*", default=[], help="flags to leave out of the argument cases "
                    "(--workers on code that does not bound it forks that many processes)")
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
    size = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize")).split()[1]) * 1024
    limit = size + int(opts.limit_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    print(f"address space limit {limit / 2**30:.1f} GB (start {size / 2**30:.1f} GB); corpus in {root}", flush=True)
    rng = random.Random(0)
    templates = commands(f, root / "o")
    kinds = {
        "weights": lambda: itertools.chain(*(mutations(f[k], root / "m" / k, rng) for k in
                                             ("pt", "st", "caffemodel", "npy", "h5", "keras")),
                                           weights_variants(f, root / "wv")),
        "index": lambda: itertools.chain(mutations(f["index"], root / "m" / "index", rng), index_variants(root / "iv")),
        "codes": lambda: itertools.chain(mutations(f["codes"], root / "m" / "codes", rng), codes_variants(root / "cv")),
        "run": lambda: itertools.chain(mutations(f["run"], root / "m" / "run", rng),
                                       ((lbl, p) for lbl, p in run_variants(f, root / "rv") if Path(p).is_dir())),
        "stats": lambda: itertools.chain(mutations(f["stats"], root / "m" / "stats", rng),
                                         ((lbl, p) for lbl, p in run_variants(f, root / "rv2") if not Path(p).is_dir())),
        "labels": lambda: itertools.chain(mutations(f["valtxt"], root / "m" / "valtxt", rng),
                                          mutations(f["synsets"], root / "m" / "syn", rng), label_variants(root / "lv")),
        "mean": lambda: itertools.chain(mutations(f["meanproto"], root / "m" / "mp", rng),
                                        mutations(f["meannpy"], root / "m" / "mn", rng),
                                        [("mean-huge", _write(root / "mv" / "huge.npy",
                                                              hf.npy_bytes(hf.npy_header("<f4", (3, 10**5, 10**5)), bytes(64)))),
                                         ("mean-proto-huge", _write(root / "mv" / "huge.binaryproto",
                                                                    hf.blob((1, 3, 10**5, 10**5)))),
                                         ("mean-obj", _write(root / "mv" / "obj.npy",
                                                             hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps({1: 2}))))]),
        "data": lambda: itertools.chain(mutations(f["data"], root / "m" / "data", rng),
                                        mutations(f["cifar"], root / "m" / "cifar", rng),
                                        mutations(f["shards"] / "train-000000.tar", root / "m" / "shards", rng),
                                        data_variants(f, root / "dv")),
        "config": lambda: mutations(f["config"], root / "m" / "config", rng),
        "image": lambda: mutations(f["img"], root / "m" / "img", rng),
    }
    failures: dict[tuple, list] = {}
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
                r = run_one(argv, root, o)
                tried += 1
                if tried % 100 == 0:
                    print(f"  {tried} inputs, {time.time() - t0:.0f} s, {len(failures)} distinct failures", flush=True)
                names = [str(path), Path(str(path)).name, os.path.basename(str(path).rstrip("/"))]
                fail = judge(r, names)
                if opts.verbose:
                    print(f"[{kind}/{label}] {' '.join(argv[:2])}: {r['status']} {r['msg'][:160]}", flush=True)
                if fail:
                    key = (fail, type(r["exc"]).__name__ if r["exc"] is not None else "-", site(r), argv[0])
                    failures.setdefault(key, []).append((kind, label, argv, r["msg"], r["changed"][:3]))
    if not opts.only or opts.only == "args":
        for label, argv, flag in arg_cases(f):
            if flag in opts.skip:
                continue
            o = root / "o" / f"{tried}"
            o.mkdir(parents=True)
            argv = [a.replace("{O}", str(o)) for a in argv]
            value = argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else ""
            out = os.path.abspath(value) if flag in ("--out", "--plot", "--run-dir") and value else o
            r = run_one(argv, root, out)
            tried += 1
            if tried % 100 == 0:
                print(f"  {tried} inputs, {time.time() - t0:.0f} s, {len(failures)} distinct failures", flush=True)
            names = [flag, flag.lstrip("-").replace("-", "_")] + ([value] if len(value) > 1 and not value.isdigit() else [])
            fail = judge(r, names)
            if opts.verbose:
                print(f"[args] {label}: {r['status']} {r['msg'][:160]}", flush=True)
            if fail:
                key = (fail, type(r["exc"]).__name__ if r["exc"] is not None else "-", site(r), argv[0])
                failures.setdefault(key, []).append(("args", label, argv, r["msg"], r["changed"][:3]))
    print(f"\n{tried} hostile inputs in {time.time() - t0:.0f} s; {len(failures)} distinct failures "
          f"({sum(len(v) for v in failures.values())} inputs)")
    for key, cases in sorted(failures.items(), key=lambda kv: kv[0]):
        kind, label, argv, msg, changed = cases[0]
        print(f"- {key[0]} {key[1]} at {key[2]} ({key[3]}, {len(cases)}x) e.g. [{kind}/{label}]: {msg[:300]}"
              + (f" changed {changed}" if changed else ""))
    if not opts.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


if __name__ == "__main__":
    raise SystemExit(main_sweep())
