"""benchmarks/hostile_sweep.py's inputs: the valid corpus the hostile files sit beside, generic damage
to any file (truncation, flipped bits, a folder, a FIFO or a symlink loop in its place, a
non-UTF-8 name), and hostile weights files of every format the package reads."""

from __future__ import annotations

import contextlib
import io
import os
import random
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hostile_files as hf  # noqa: E402
from alexnet.cli import main  # noqa: E402


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
    card = Card(
        model="cifar_convnet",
        num_classes=2,
        input_size=32,
        in_channels=3,
        resize=32,
        classes=["cat", "dog"],
        source="sweep",
    )
    f["pt"] = save_pretrained(model, card, root / "w.pt")
    f["st"] = save_pretrained(model, card, root / "w.safetensors")
    (root / "synsets.txt").write_text("n01 cat\nn02 dog\n")
    (root / "index.json").write_text(json_dumps({"0": ["n01", "cat"], "1": ["n02", "dog"]}))
    f["synsets"], f["classjson"] = root / "synsets.txt", root / "index.json"
    (root / "c.yaml").write_text("epochs: 1\nbatch_size: 2\n")
    f["config"] = root / "c.yaml"
    run = root / "run"
    quiet(
        [
            "train",
            "--model",
            "cifar_convnet",
            "--data",
            str(data),
            "--run-dir",
            str(run),
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
    )
    f["run"] = run
    quiet(
        [
            "features",
            "--weights",
            str(f["pt"]),
            "--data",
            str(data),
            "--layer",
            "pool5",
            "--out",
            str(root / "index.npz"),
            "--workers",
            "0",
        ]
    )
    f["index"] = root / "index.npz"
    quiet(
        [
            "codes",
            "train",
            "--index",
            str(f["index"]),
            "--bits",
            "8",
            "--epochs",
            "1",
            "--out",
            str(root / "codes.pt"),
        ]
    )
    f["codes"] = root / "codes.pt"
    f["stats"] = run / "stats.pt"
    quiet(["prepare", str(data), str(root / "shards"), "--resize", "32", "--workers", "0"])
    f["shards"] = root / "shards"
    f["cifar"] = hf.cifar_archive(root / "cifar-10-python.tar.gz")
    f["idx"] = hf.idx_folder(root / "fashion")
    f["caffemodel"] = root / "w.caffemodel"
    f["caffemodel"].write_bytes(hf.small_caffemodel())
    f["npy"] = root / "w.npy"
    np.save(
        f["npy"],
        {n: [np.ones((2, 2), np.float32), np.ones(2, np.float32)] for n, _ in hf.ALEXNET_LAYERS},
        allow_pickle=True,
    )
    f["meanproto"] = root / "mean.binaryproto"
    f["meanproto"].write_bytes(hf.blob((1, 3, 32, 32), np.full(3 * 32 * 32, 100, np.float32).tobytes()))
    f["meannpy"] = root / "mean.npy"
    np.save(f["meannpy"], np.full((3, 32, 32), 100, np.float32))
    f["h5"] = root / "w.weights.h5"
    f["h5"].write_bytes(hf.h5_bytes({"layers/conv2d/vars/0": (3, 3, 3, 4), "layers/conv2d/vars/1": (4,)}))
    f["keras"] = hf.keras_zip(
        root / "w.keras",
        {"config.json": b'{"config": {"layers": []}}', "model.weights.h5": f["h5"].read_bytes()},
    )
    return f


def json_dumps(x) -> str:
    import json

    return json.dumps(x)


def quiet(argv) -> int:
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
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
    yield put("text", b"hello\n")
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
    base = dict(
        model="cifar_convnet",
        num_classes=2,
        input_size=32,
        in_channels=3,
        resize=32,
        mean=[0.5, 0.5, 0.5],
        std=None,
        pixel_scale=255.0,
        channel_order="RGB",
        lrn="paper",
        classes=["cat", "dog"],
        source="x",
        model_kw={},
        accuracy={},
    )
    bad = {
        "num_classes": ["x", -1, 0, 150_000, 10**7, 10**12, 2.5, True, None, [2]],
        "input_size": [-5, 0, 10**6, "x", None],
        "in_channels": [0, 10**6, "x"],
        "resize": [-1, "x", 10**9],
        "mean": ["abc", [1, 2], {"a": 1}, [[["x"]]], None],
        "std": ["x", [0, 0, 0], [1, 2]],
        "pixel_scale": ["x", -1, None],
        "channel_order": ["XYZ", 5],
        "lrn": [5, "nope"],
        "classes": [{"a": 1}, ["a"], [1, 2], "cat,dog"],
        "model": ["nope", 5, None],
        "model_kw": ["x", {"groups": "x"}, {"bogus": 1}, {"dropout": 5}],
        "accuracy": ["x"],
        "source": [5],
    }
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
    for label, obj in [
        ("model-list", {"model": [1], "card": card.to_dict()}),
        ("model-wrongshape", {"model": {k: torch.zeros(3) for k in state}, "card": card.to_dict()}),
        ("model-missing", {"model": {}, "card": card.to_dict()}),
        ("plain-list", [1, 2, 3]),
        ("plain-int", 5),
        ("plain-tensor", torch.zeros(3)),
        ("dict-of-ints", {"a": 1}),
        ("arch-other", {"arch": "resnet50", "state_dict": state}),
        ("arch-int", {"arch": 5, "state_dict": state}),
        ("tv-wrong", {"features.0.weight": torch.zeros(3), "classifier.6.weight": torch.zeros(7)}),
        (
            "ours-1d",
            {
                "classifier.fc8.weight": torch.zeros(3),
                "features.conv1.weight": torch.zeros(3),
                "features.conv2.weight": torch.zeros(3),
            },
        ),
        (
            "ours-huge-classes",
            {
                "classifier.fc8.weight": torch.zeros(0, 4096).expand(0, 4096),
                "features.conv1.weight": torch.zeros(96, 3, 11, 11),
                "features.conv2.weight": torch.zeros(256, 48, 5, 5),
            },
        ),
    ]:
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
        (
            "st-offsets-past-end",
            hf.safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}}),
        ),
        (
            "st-shape-huge",
            hf.safetensors_bytes(
                {"w": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 16]}}, bytes(16)
            ),
        ),
        (
            "st-dtype",
            hf.safetensors_bytes({"w": {"dtype": "Q99", "shape": [4], "data_offsets": [0, 16]}}, bytes(16)),
        ),
        (
            "st-neg",
            hf.safetensors_bytes({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, bytes(16)),
        ),
        ("st-list", hf.safetensors_bytes([1, 2])),
        ("st-meta-int", hf.safetensors_bytes({"__metadata__": {"card": 5}})),
        (
            "st-one-tensor",
            hf.safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(16)),
        ),
    ]:
        p = out / f"{label}.safetensors"
        p.write_bytes(raw)
        yield label, p
    # caffemodels
    n = np.ones(4, np.float32).tobytes()
    for label, raw in [
        (
            "caffe-neg-dims",
            hf.caffemodel_bytes([(a, t, [hf.blob((-1, 4), n)]) for a, t in hf.ALEXNET_LAYERS]),
        ),
        (
            "caffe-huge-dims",
            hf.caffemodel_bytes([(a, t, [hf.blob((10**9, 10**9), n)]) for a, t in hf.ALEXNET_LAYERS]),
        ),
        (
            "caffe-huge-nodata",
            hf.caffemodel_bytes([(a, t, [hf.blob((10**6, 10**4))]) for a, t in hf.ALEXNET_LAYERS]),
        ),
        (
            "caffe-legacy-huge",
            hf.caffemodel_bytes(
                [
                    (
                        a,
                        t,
                        [
                            hf.blob(
                                None,
                                n,
                                legacy=dict(num=2**31 - 1, channels=2**31 - 1, height=2**31 - 1, width=-5),
                            )
                        ],
                    )
                    for a, t in hf.ALEXNET_LAYERS
                ]
            ),
        ),
        ("caffe-one-blob", hf.caffemodel_bytes([(a, t, [hf.blob((4,), n)]) for a, t in hf.ALEXNET_LAYERS])),
        (
            "caffe-many-dims",
            hf.caffemodel_bytes([(a, t, [hf.blob((1,) * 40, n[:4])]) for a, t in hf.ALEXNET_LAYERS]),
        ),
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
        (
            "npy-layer-int",
            hf.npy_bytes(hf.npy_header("|O", ()), pickle_dumps({n: 1 for n, _ in hf.ALEXNET_LAYERS})),
        ),
        (
            "npy-layer-strs",
            hf.npy_bytes(
                hf.npy_header("|O", ()), pickle_dumps({n: ["a", "b"] for n, _ in hf.ALEXNET_LAYERS})
            ),
        ),
        (
            "npy-layer-1d",
            hf.npy_bytes(
                hf.npy_header("|O", ()),
                pickle_dumps(
                    {n: [np.ones(3, np.float32), np.ones(3, np.float32)] for n, _ in hf.ALEXNET_LAYERS}
                ),
            ),
        ),
        (
            "npy-layer-3d",
            hf.npy_bytes(
                hf.npy_header("|O", ()),
                pickle_dumps(
                    {
                        n: [np.ones((2, 2, 2), np.float32), np.ones(2, np.float32)]
                        for n, _ in hf.ALEXNET_LAYERS
                    }
                ),
            ),
        ),
        (
            "npy-fc6-9216",
            hf.npy_bytes(
                hf.npy_header("|O", ()),
                pickle_dumps(
                    {
                        n: [np.ones((9216, 3) if n == "fc6" else (2, 2), np.float32), np.ones(2, np.float32)]
                        for n, _ in hf.ALEXNET_LAYERS
                    }
                ),
            ),
        ),
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
        (
            "keras-config-types",
            {"config.json": b'{"config": {"layers": {"a": 1}}}', "model.weights.h5": h5},
            8,
        ),
        ("keras-config-list", {"config.json": b"[1, 2]", "model.weights.h5": h5}, 8),
        (
            "keras-config-layers",
            {"config.json": b'{"config": {"layers": [1, "x", {"config": 5}]}}', "model.weights.h5": h5},
            8,
        ),
        ("keras-no-weights", {"config.json": b"{}"}, 8),
        ("keras-weights-garbage", {"config.json": b"{}", "model.weights.h5": b"garbage"}, 8),
    ]:
        yield label, hf.keras_zip(out / f"{label}.keras", members, comp)
    p = out / "keras-declared-huge.keras"
    hf.keras_zip(p, {"config.json": b"{}", "model.weights.h5": bytes(1000)})
    p.write_bytes(hf.set_zip_sizes(p.read_bytes(), "model.weights.h5", 0xFFFFFFF0))
    yield "keras-declared-huge", p
    for label, ds, attrs in [
        (
            "h5-huge-declared",
            {"layers/conv2d/vars/0": (10**5, 10**5, 1, 1), "layers/conv2d/vars/1": (1,)},
            None,
        ),
        (
            "h5-medium-declared",
            {"layers/conv2d/vars/0": (10000, 10000, 1, 1), "layers/conv2d/vars/1": (1,)},
            None,
        ),
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
