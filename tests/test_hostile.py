"""Issue 11 §1 and §5: a corpus of hostile inputs, generated here (tests/hostile_files.py), each fed
to the command line. Every one must end in exactly one line that names the file or the flag and
says what was expected (exit status 2 for bad input), never the generic "run with --debug"
fallback, and write nothing outside the run's own output. The size bombs also run in a child
process under an address-space limit a little above what the interpreter already holds, so an
allocation of what a file merely claims fails the test instead of passing unnoticed."""
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import hostile_files as hf
from hostile_files import CARD, ONE
from alexnet.cli import main
from conftest import write_image



@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Valid inputs that the hostile ones sit beside: an image folder, a flat folder, weights, a
    feature index, and the state dict the weights hold."""
    from alexnet.card import Card
    from alexnet.interop.pretrained import save_pretrained
    from alexnet.models import create_model

    root = tmp_path_factory.mktemp("base")
    for split in ("train", "val"):
        for c, cls in enumerate(("cat", "dog")):
            for i in range(2):
                write_image(root / "data" / split / cls / f"{i}.png", (32, 32), seed=c * 10 + i)
    for i in range(2):
        write_image(root / "flat" / f"{i}.png", (32, 32), seed=i)
    model = create_model("cifar_convnet", num_classes=2, seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    save_pretrained(model, Card(**CARD), root / "w.pt")
    (root / "index.npz").write_bytes(hf.npz_bytes(hf.index_members()))
    return dict(root=root, data=root / "data", flat=root / "flat", w=root / "w.pt", img=root / "data/val/cat/0.png",
                index=root / "index.npz", state=state)


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))

# (id, make(tmp, base) -> (argv, the text that must name the thing), expected substring, status)
CONVERT = ["convert", "{X}", "{OUT}/o.pt"]
CASES = [
    # ---- model cards: checked before anything is built from them (§1: 150,000 / 10^7 classes) ----
    ("card-150000-classes", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], num_classes=150_000), CONVERT),
     "card num_classes=150000: expected an integer 1..100,000", 2),
    ("card-1e7-classes", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], num_classes=10**7), CONVERT),
     "num_classes=10000000", 2),
    ("card-classes-vs-weights", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], num_classes=50_000, classes=[]),
                                              CONVERT), "has shape (2, 1024), the model expects (50000, 1024)", 2),
    ("card-num-classes-str", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], num_classes="x"), CONVERT), "card num_classes='x'", 2),
    ("card-mean-str", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], mean="abc"), CONVERT), "card mean='abc'", 2),
    ("card-classes-dict", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], classes={"a": 1}), CONVERT), "card classes=", 2),
    ("card-input-negative", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], input_size=-5), CONVERT), "card input_size=-5", 2),
    ("card-input-unfit", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], input_size=8, resize=8), CONVERT),
     "card input_size=8, but cifar_convnet takes sides 32..", 2),
    ("card-model-kw-str", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], model_kw="x"), CONVERT), "card model_kw='x'", 2),
    ("card-model-kw-unknown", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], model_kw={"groups": 3}), CONVERT),
     "unknown option(s) ['groups']", 2),
    ("card-list", lambda t, b: (hf.torch_save(t / "c.pt", {"model": b["state"], "card": [1]}), CONVERT), "the model card is a list", 2),
    ("card-missing-fields", lambda t, b: (hf.torch_save(t / "c.pt", {"model": b["state"], "card": {"model": "alexnet"}}),
                                          CONVERT), "the model card has no num_classes, input_size", 2),
    ("card-state-not-tensors", lambda t, b: (hf.torch_save(t / "c.pt", {"model": {1: 2}, "card": CARD}), CONVERT),
     "its 'model' entry is not a state dict of tensors", 2),
    ("safetensors-card-not-json", lambda t, b: (hf.write(t / "c.safetensors", hf.safetensors_bytes(
        {"__metadata__": {"card": "{nope"}, "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, ONE)),
        CONVERT), "its metadata 'card': not JSON", 2),
    ("evaluate-card-std-zero", lambda t, b: (hf.card_pt(t / "c.pt", b["state"], std=[0, 0, 0]),
                                             ["evaluate", "--weights", "{X}", "--data", str(b["data"]), "--workers", "0"]),
     "card std=[0, 0, 0]", 2),
    # ---- torch files: sizes the pickle claims (§1) ----
    ("pt-storage-claims-1e9", lambda t, b: (hf.torch_zip(t / "s.pt", {"w": hf.Tensor(hf.Storage("0", 10**9), (10**9,))},
                                                        {"0": ONE}), CONVERT), "not a readable weights-only torch file", 2),
    ("pt-tensor-past-storage", lambda t, b: (hf.torch_zip(t / "s.pt", {"w": hf.Tensor(hf.Storage("0", 4), (10**9,))},
                                                         {"0": ONE}), CONVERT), "not a readable weights-only torch file", 2),
    ("pt-zero-strides", lambda t, b: (hf.stride0(t / "z.pt"), CONVERT), "is backed by only 4 bytes", 2),
    ("pt-legacy-claims", lambda t, b: (hf.legacy_claims(t / "l.pt"), CONVERT), "its storages claim 40,000,000,000 bytes", 2),
    ("pt-deflate-bomb", lambda t, b: (hf.torch_zip(t / "d.pt", {"w": hf.Tensor(hf.Storage("0", 4), (4,))},
                                                  {"0": bytes(20_000_000)}, zipfile.ZIP_DEFLATED), CONVERT),
     "would expand from", 2),
    ("pt-declared-4gb", lambda t, b: (hf.declared(t / "d.pt", "archive/data/0", (hf.torch_zip(
        t / "x.pt", {"w": hf.Tensor(hf.Storage("0", 4), (4,))}, {"0": bytes(2000)}, zipfile.ZIP_DEFLATED)).read_bytes()),
        CONVERT), "would expand from", 2),
    ("pt-flipped-digest", lambda t, b: (hf.write(t / "f.pt", hf.flip(b["w"].read_bytes(), 200)), CONVERT),
     "its SHA-256 does not match", 2),
    ("pt-tar-format", lambda t, b: (hf.write(t / "t.pt", hf.tar_bytes({"storages": b"x", "pickle": b"x"})), CONVERT),
     "pre-2018 tar format", 2),
    # ---- safetensors, caffemodel, caffe-tensorflow .npy ----
    ("safetensors-header-2^60", lambda t, b: (hf.write(t / "h.safetensors", hf.safetensors_bytes(b"{}", header_len=1 << 60)),
                                              CONVERT), "its header claims", 2),
    ("safetensors-offsets", lambda t, b: (hf.write(t / "o.safetensors", hf.safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}})), CONVERT), "not a readable .safetensors", 2),
    ("caffe-negative-dims", lambda t, b: (hf.write(t / "n.caffemodel", hf.caffemodel_bytes(
        [(a, k, [hf.blob((-1, 4), ONE)]) for a, k in hf.ALEXNET_LAYERS])), CONVERT), "has a blob of shape (-1, 4)", 2),
    ("caffe-dims-overflow", lambda t, b: (hf.write(t / "o.caffemodel", hf.caffemodel_bytes(
        [(a, k, [hf.blob((2**32, 2**32))]) for a, k in hf.ALEXNET_LAYERS])), CONVERT), "holds 0 values for a blob of shape", 2),
    ("caffe-one-blob", lambda t, b: (hf.write(t / "b.caffemodel", hf.caffemodel_bytes(
        [(a, k, [hf.blob((1,), ONE[:4])]) for a, k in hf.ALEXNET_LAYERS])), CONVERT), "has no bias blob", 2),
    ("caffe-150000-classes", lambda t, b: (hf.write(t / "c.caffemodel", hf.small_caffemodel(
        (150_000, 1), np.ones(150_000, np.float32).tobytes())), CONVERT), "num_classes must be an integer 1..100,000", 2),
    ("npy-reconstruct-no-data", lambda t, b: (hf.write(t / "r.npy", hf.npy_bytes(hf.npy_header("|O", ()),
                                                                            hf.reconstruct_without_data())), CONVERT),
     "an array must carry its data", 2),
    ("npy-object-shape", lambda t, b: (hf.write(t / "s.npy", hf.npy_bytes(hf.npy_header("|O", (10**9,)), b"")), CONVERT),
     "an object array of shape (1000000000,)", 2),
    ("npy-header-not-dict", lambda t, b: (hf.write(t / "h.npy", hf.npy_bytes("[1, 2]")), CONVERT), "damaged .npy header", 2),
    ("npy-layer-strings", lambda t, b: (hf.write(t / "l.npy", hf.npy_bytes(hf.npy_header("|O", ()), pickle.dumps(
        {n: ["a", "b"] for n, _ in hf.ALEXNET_LAYERS}, protocol=2))), CONVERT), "does not hold arrays of numbers", 2),
    ("mean-npy-claims-3e10", lambda t, b: (hf.write(t / "m.npy", hf.npy_bytes(hf.npy_header("<f4", (3, 10**5, 10**5)),
                                                                          bytes(64))),
                                           ["convert", str(b["w"]), "{OUT}/o.pt", "--mean", "{X}"]),
     "its header claims shape (3, 100000, 100000)", 2),
    ("mean-fifo", lambda t, b: (hf.fifo(t / "m.binaryproto"), ["convert", str(b["w"]), "{OUT}/o.pt", "--mean", "{X}"]),
     "not a regular file", 2),
    # ---- Keras: zip members and HDF5 datasets declare their sizes ----
    ("keras-zip-bomb", lambda t, b: (hf.keras_zip(t / "b.keras", {"config.json": b"{}", "model.weights.h5": bytes(20_000_000)}),
                                     CONVERT), "would expand from", 2),
    ("keras-declared-4gb", lambda t, b: (hf.declared(t / "d.keras", "model.weights.h5", hf.keras_zip(
        t / "x.keras", {"config.json": b"{}", "model.weights.h5": bytes(2000)}).read_bytes()), CONVERT), "would expand from", 2),
    ("keras-h5-declared", lambda t, b: (hf.write(t / "h.weights.h5", hf.h5_bytes(
        {"layers/conv2d/vars/0": (10000, 10000, 1, 1), "layers/conv2d/vars/1": (1,)})), CONVERT), "declares 400,000,000 bytes", 2),
    ("keras-config-types", lambda t, b: (hf.keras_zip(t / "c.keras", {"config.json": b'{"config": {"layers": [1, {"config": 5}]}}',
                                                                      "model.weights.h5": b"junk"}), CONVERT),
     "not a readable Keras file", 2),
    # ---- labels: class numbers are bounded before anything is sized by them (§1: 10^12) ----
    ("valtxt-class-1e12", lambda t, b: (hf.write(t / "val.txt", "0.png 1000000000000\n1.png 0\n"),
                                        ["stats", "--data", str(b["flat"]), "--labels", "{X}", "--out", "{OUT}/s.pt",
                                         "--workers", "0"]), "expected '<file> <class number 0..999999>'", 2),
    ("valtxt-fifo", lambda t, b: (hf.fifo(t / "val.txt"), ["stats", "--data", str(b["flat"]), "--labels", "{X}",
                                                         "--out", "{OUT}/s.pt", "--workers", "0"]), "not a regular file", 2),
    ("cls-1e12", lambda t, b: (hf.shard(t / "sh" / "train-000000.tar", {"a.png": b["img"].read_bytes(), "a.cls": b"1000000000000"}),
                               ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0"]),
     "should hold a class number 0..999999", 2),
    ("cifar-label-1e12", lambda t, b: (hf.cifar_archive(hf.dir(t / "c") / "cifar-10-python.tar.gz", hf.cifar_batch(2, [10**12, 0])),
                                       ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0", "--resize", "0"]),
     "has label 1000000000000, outside the 10 classes", 2),
    ("idx-label-200", lambda t, b: (hf.idx_folder(t / "fashion", label_values=(200, 0)),
                                    ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0", "--resize", "0"]),
     "has label 200, outside the 10 classes", 2),
    ("synsets-count", lambda t, b: (hf.write(t / "syn.txt", "n01 cat\n"),
                                    ["predict", str(b["img"]), "--weights", str(b["w"]), "--labels", "{X}", "--quiet"]),
     "1 names for a 2-class network", 2),
    ("class-index-json-types", lambda t, b: (hf.write(t / "labels.json", '{"0": 5, "1": 6}'),
                                             ["predict", str(b["img"]), "--weights", str(b["w"]), "--labels", "{X}", "--quiet"]),
     "expected Keras' imagenet_class_index.json", 2),
    # ---- data: archives whose headers claim more than they hold (§1: zip and gzip bombs) ----
    ("idx-gzip-bomb", lambda t, b: (hf.idx_folder(t / "fashion", images=(2, 5000, 5000), image_body=bytes(50_000_000)),
                                    ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0", "--resize", "0"]),
     "more than this", 2),
    ("idx-dims-1e14", lambda t, b: (hf.idx_folder(t / "fashion", images=(10**6, 10**4, 10**4), image_body=b""),
                                    ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0", "--resize", "0"]),
     "header claims (1000000, 10000, 10000)", 2),
    ("cifar-member-bomb", lambda t, b: (hf.write(t / "c" / "cifar-10-python.tar.gz", hf.gz(hf.tar_bytes(
        {"cifar-10-batches-py/data_batch_1": bytes(30_000_000)}))), ["stats", "--data", "{X}", "--out", "{OUT}/s.pt",
                                                                      "--workers", "0", "--resize", "0"]),
     "member cifar-10-batches-py/data_batch_1 claims 30,000,000 bytes", 2),
    ("tar-member-size-claim", lambda t, b: (hf.shard(t / "sh" / "train-000000.tar", {"x/a.png": b["img"].read_bytes(),
                                                                                   "x/b.png": b["img"].read_bytes()},
                                                   {"x/a.png": 10**10}),
                                            ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0"]),
     "not a readable uncompressed tar (unexpected end of data)", 2),
    ("braces-1e7", lambda t, b: (t / "train-{0..9999999}.tar", ["stats", "--data", "{X}", "--out", "{OUT}/s.pt"]),
     "expands to more than 100,000 shards", 2),
    ("braces-nested", lambda t, b: (t / "t-{0..999}-{0..999}.tar", ["stats", "--data", "{X}", "--out", "{OUT}/s.pt"]),
     "expands to more than 100,000 shards", 2),
    # ---- feature indexes and codes (retrieve, codes) ----
    ("npz-header-claims", lambda t, b: (hf.index(t / "i.npz", features=hf.npy_bytes(hf.npy_header("<f4", (10**9, 4096)), bytes(64))),
                                        ["retrieve", "--index", "{X}", "--query-index", str(b["index"])]),
     "its header claims shape (1000000000, 4096)", 2),
    ("npz-deflate-bomb", lambda t, b: (hf.write(t / "i.npz", hf.npz_bytes(hf.index_members(features=hf.npy_of(
        np.zeros((3, 2_000_000), np.float32))), zipfile.ZIP_DEFLATED)), ["retrieve", "--index", "{X}", "--query-index",
                                                                          str(b["index"])]), "a zip bomb?", 2),
    ("npz-declared-4gb", lambda t, b: (hf.declared(t / "i.npz", "features.npy", hf.npz_bytes(hf.index_members(), zipfile.ZIP_DEFLATED)),
                                       ["codes", "train", "--index", "{X}", "--out", "{OUT}/c.pt"]), "would expand from", 2),
    ("npz-missing-key", lambda t, b: (hf.index(t / "i.npz", paths=None), ["codes", "train", "--index", "{X}", "--out", "{OUT}/c.pt"]),
     "'paths' is missing", 2),
    ("npz-query-dims", lambda t, b: (hf.index(t / "q.npz", features=hf.npy_of(np.ones((3, 7), np.float32))),
                                     ["retrieve", "--index", str(b["index"]), "--query-index", "{X}"]),
     "7-d features, but --index", 2),
    ("codes-dim-1e9", lambda t, b: (hf.torch_save(t / "c.pt", {"state": {}, "dim": 10**9, "bits": 8, "hidden": 1024}),
                                    ["retrieve", "--index", str(b["index"]), "--query-index", str(b["index"]),
                                     "--metric", "hamming", "--codes", "{X}"]), "not a codes file", 2),
    # ---- run folders, checkpoints, statistics and configs ----
    ("report-config-alias-bomb", lambda t, b: (hf.run_with(t / "run", **{"config.yaml": ALIAS_BOMB}),
                                               ["report", "{X}", "--out", "{OUT}/r.html"]), "nested YAML aliases", 2),
    ("curves-metrics-garbage", lambda t, b: (hf.run_with(t / "run", **{"metrics.csv": "epoch,lr\nx,y\n"}),
                                             ["visualize", "curves", "{X}", "--out", "{OUT}/c.png"]), "metrics.csv:2", 2),
    ("resume-checkpoint-types", lambda t, b: (hf.ck(t.parent / "out" / "last.pt", config=[1]), ["train", "--resume", "{X}"]),
     "its config has the wrong type", 2),
    ("resume-state-mismatch", lambda t, b: (hf.ck(t.parent / "out" / "last.pt", model={"x": torch.zeros(1)},
                                                   card={"classes": ["cat", "dog"]}, config={
        "model": "cifar_convnet", "data": str(b["data"]), "resize": 32, "crop": 32, "workers": 0, "epochs": 2}),
        ["train", "--resume", "{X}", "--quiet"]), "does not fit the run it belongs to", 2),
    ("stats-shapes", lambda t, b: (hf.ck(t / "s.pt"), ["train", "--model", "cifar_convnet", "--data", str(b["data"]),
                                                     "--stats", "{X}", "--run-dir", "{OUT}/run", "--resize", "32",
                                                     "--workers", "0", "--quiet"]),
     "not statistics of 3-channel images", 2),
    ("config-fifo", lambda t, b: (hf.fifo(t / "c.yaml"), ["train", "--config", "{X}", "--data", str(b["data"])]),
     "not a regular file", 2),
    ("config-types-name-the-file", lambda t, b: (hf.write(t / "c.yaml", "epochs: x\n"), ["train", "--config", "{X}",
                                                                                       "--data", str(b["data"])]),
     "config epochs (from", 2),
]

# (id, argv, the flag, expected substring): hostile argument values
ARGS = [
    ("summary-1e7-classes", ["summary", "alexnet", "--num-classes", "10000000"], "--num-classes", "expected an integer 1..100,000"),
    ("summary-input-side", ["summary", "alexnet", "--input-size", "100000"], "--input-size", "expected an integer 1..8,192"),
    ("summary-input-unfit", ["summary", "alexnet", "--input-size", "64"], "--input-size", "alexnet takes 227x227 input (sides 227..258 work)"),
    ("retrieve-k-0", ["retrieve", "--index", "{index}", "--query-index", "{index}", "--k", "0"], "--k", "expected an integer 1.."),
    ("codes-bits-1e9", ["codes", "train", "--index", "{index}", "--out", "{OUT}/c.pt", "--bits", "1000000000"], "--bits", "1..65,536"),
    ("evaluate-workers-1e5", ["evaluate", "--weights", "{w}", "--data", "{data}", "--workers", "100000"], "--workers", "0..256"),
    ("prepare-shard-size-0", ["prepare", "{data}", "{OUT}/sh", "--shard-size", "0"], "--shard-size", "1..10,000,000"),
    ("predict-topk-0", ["predict", "{img}", "--weights", "{w}", "--topk", "0"], "--topk", "expected an integer"),
    ("experiment-target-nan", ["experiment", "ablations", "--target-error", "nan", "--out", "{OUT}/x"], "--target-error",
     "expected a number in [0, 1]"),
    ("train-std-nan", ["train", "--data", "{data}", "--std", "nan", "nan", "nan"], "std", "must be 1 or 3 positive numbers"),
    ("train-target-error-5", ["train", "--data", "{data}", "--target-train-error", "5"], "target_train_error", "must be in [0, 1]"),
    ("train-batch-empty", ["train", "--data", "{data}", "--batch-size", ""], "--batch-size", "invalid int value"),
    ("bench-steps-0", ["bench", "model", "--steps", "0"], "--steps", "expected an integer 1.."),
    ("predict-plot-no-extension", ["predict", "{img}", "--weights", "{w}", "--plot", "{OUT}/grid"], "--plot",
     "expected an image file name ending in .png"),
    ("features-out-empty", ["features", "--weights", "{w}", "--data", "{data}", "--out", ""], "--out",
     "ending in .npz"),
    ("evaluate-device-foo", ["evaluate", "--weights", "{w}", "--data", "{data}", "--device", "foo"], "--device",
     "not a device"),
    ("train-seed-negative", ["train", "--data", "{data}", "--seed", "-1"], "seed", "must be between 0 and"),
    ("train-run-dir-empty", ["train", "--data", "{data}", "--run-dir", ""], "--run-dir", "empty; expected a folder"),
    ("train-model-kw-value", ["train", "--data", "{data}", "--model-kw", '{"dropout": 5}'], "model_kw",
     "dropout must be a probability"),
    ("train-model-kw-classes", ["train", "--data", "{data}", "--model-kw", '{"num_classes": 5}'], "model_kw",
     "num_classes come(s) from the data"),
    ("weights-download-empty", ["weights", "--download", ""], "--download", "not a name from `alexnet weights`"),
    ("features-out-not-npz", ["features", "--weights", "{w}", "--data", "{data}", "--out", "{OUT}/f.bin"], "--out",
     "ending in .npz"),
]


def _tree(root: Path) -> dict:
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def _one_line(capsys, status: int, want_status: int, names: list[str], expected: str) -> str:
    err = capsys.readouterr().err.strip()
    assert status == want_status, err
    lines = err.splitlines()
    # `train` first says what it resolved (indented lines); the error is one line, the last
    assert [i for i, x in enumerate(lines) if ": error: " in x] == [len(lines) - 1], err
    assert len(lines) == 1 or lines[0].startswith("alexnet train: ") and all(x.startswith("  ") for x in lines[1:-1]), err
    line = lines[-1]
    assert ": error: " in line and "run with --debug" not in line and "Traceback" not in line, line
    assert any(n in line for n in names), f"{line!r} names none of {names}"
    assert expected in line, line
    return line


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working folder, cache and data home inside tmp_path: every write is visible to _tree."""
    for name, var in (("cwd", None), ("cache", "ALEXNET_CACHE"), ("home", "ALEXNET_DATA")):
        (tmp_path / name).mkdir()
        if var:
            monkeypatch.setenv(var, str(tmp_path / name))
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.delenv("ALEXNET_DEBUG", raising=False)
    return tmp_path


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_file_gives_one_line(case, base, sandbox, capsys):
    name, make, expected, status = case
    made, argv = make(hf.dir(sandbox / "in"), base)
    out = sandbox / "out"
    argv = [a.replace("{X}", str(made)).replace("{OUT}", str(out)) for a in argv]
    before = _tree(sandbox)
    got = main(argv)
    names = [str(made), Path(str(made)).name]
    _one_line(capsys, got, status, names, expected)
    after = _tree(sandbox)
    changed = [p for p in set(before) | set(after) if before.get(p) != after.get(p)
               and not p.startswith(str(out)) and not p.startswith(str(sandbox / "cache"))]
    assert not changed, f"written outside the output: {changed}"


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", ARGS, ids=[c[0] for c in ARGS])
def test_hostile_argument_gives_one_line(case, base, sandbox, capsys):
    name, argv, flag, expected = case
    values = {k: str(v) for k, v in base.items() if isinstance(v, Path)} | {"OUT": str(sandbox / "out")}
    for k, v in values.items():
        argv = [a.replace("{" + k + "}", v) for a in argv]
    before = _tree(sandbox)
    _one_line(capsys, main(argv), 2, [flag], expected)
    assert _tree(sandbox) == before


# ---- the size bombs under an address-space limit ----------------------------------------------
BOMBS = ["card-150000-classes", "card-1e7-classes", "card-classes-vs-weights", "pt-storage-claims-1e9",
         "pt-zero-strides", "pt-legacy-claims", "pt-declared-4gb", "safetensors-header-2^60", "caffe-dims-overflow",
         "caffe-150000-classes", "npy-reconstruct-no-data", "mean-npy-claims-3e10", "keras-declared-4gb",
         "keras-h5-declared", "valtxt-class-1e12", "cls-1e12", "cifar-label-1e12", "idx-dims-1e14",
         "tar-member-size-claim", "braces-1e7", "npz-header-claims", "npz-declared-4gb", "codes-dim-1e9"]
CHILD = textwrap.dedent("""
    import contextlib, io, json, resource, sys, warnings
    import torch, alexnet.cli, alexnet.interop.pretrained, alexnet.analysis.commands, alexnet.data
    from alexnet.cli import main
    torch.set_num_threads(1)
    main(["summary", "cifar_convnet"])  # warm up what a first command loads
    size = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    limit = size + int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    out = []
    for argv in json.load(sys.stdin):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            status = main(argv)
        out.append([status, err.getvalue()])
    print(json.dumps({"limit": limit, "start": size, "results": out}))
""")


def test_size_bombs_allocate_nothing_they_claim(base, tmp_path, monkeypatch):
    """The same refusals, in a child whose address space is capped at 384 MB above what it holds
    after importing torch and the package: allocating any claim above fails with MemoryError
    (or torch's allocator error), which would turn the expected line into another one."""
    cases = {c[0]: c for c in CASES}
    argvs, want = [], []
    for name in BOMBS:
        _, make, expected, status = cases[name]
        made, argv = make(hf.dir(tmp_path / name / "in"), base)
        argvs.append([a.replace("{X}", str(made)).replace("{OUT}", str(tmp_path / name / "out")) for a in argv])
        want.append((name, status, expected))
    env = dict(os.environ, ALEXNET_CACHE=str(tmp_path / "cache"), PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("ALEXNET_DEBUG", None)
    r = subprocess.run([sys.executable, "-c", CHILD, str(384 << 20)], input=json.dumps(argvs), text=True,
                       capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    for (name, status, expected), (got, err) in zip(want, report["results"]):
        assert got == status and expected in err and "out of memory" not in err, (name, err)


def test_python_api_raises_clear_errors(base, tmp_path):
    """The same refusals reach Python callers as BadInput (a ValueError) naming the thing."""
    from alexnet.data import open_dataset
    from alexnet.errors import BadInput
    from alexnet.interop.pretrained import load_pretrained
    from alexnet.models import create_model

    bad = hf.card_pt(tmp_path / "c.pt", base["state"], num_classes=150_000)
    with pytest.raises(BadInput, match=r"c\.pt: card num_classes=150000"):
        load_pretrained(bad)
    with pytest.raises(BadInput, match="alexnet: num_classes must be an integer 1..100,000, got 10000000"):
        create_model("alexnet", num_classes=10**7)
    with pytest.raises(BadInput, match="in_channels must be an integer 1..1,024, got 0"):
        create_model("alexnet", in_channels=0)
    with pytest.raises(BadInput, match="expands to more than 100,000 shards"):
        open_dataset(str(tmp_path / "x-{0..9999999}.tar"))
    with pytest.raises(BadInput, match="--data '': empty"):
        open_dataset("")


def test_honest_files_still_load(tmp_path):
    """The checks refuse claims, not formats: a pre-1.6 torch file, an .npz written by numpy with
    compression, and a gzipped IDX file load when what they declare is what they hold."""
    from alexnet.data.formats import read_idx
    from alexnet.untrusted import load_npz, torch_load

    w = torch.arange(6.0).reshape(2, 3)
    torch.save({"w": w, "b": w[1]}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    got = torch_load(tmp_path / "old.pt")
    assert torch.equal(got["w"], w) and torch.equal(got["b"], w[1])
    a = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    np.savez_compressed(tmp_path / "z.npz", a=a, s=np.array(["x", "yz"]))
    z = load_npz(tmp_path / "z.npz")
    assert np.array_equal(z["a"], a) and list(z["s"]) == ["x", "yz"]
    hf.idx_folder(tmp_path / "f", images=(2, 3, 4), image_body=bytes(range(24)))
    assert read_idx(tmp_path / "f" / "train-images-idx3-ubyte.gz").tolist() == np.arange(24).reshape(2, 3, 4).tolist()
