"""Issue 11 §1 and §5: a corpus of hostile inputs, generated here (tests/hostile_files.py), each fed
to the command line. Every one must end in exactly one line that names the file or the flag and
says what was expected (exit status 2 for bad input), never the generic "run with --debug"
fallback, and write nothing outside the run's own output. The size bombs also run in a child
process under an address-space limit a little above what the interpreter already holds, so an
allocation of what a file merely claims fails the test instead of passing unnoticed."""

import csv
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
from alexnet.cli import main
from conftest import write_image
from hostile_files import CARD, ONE
from test_weights import caffe_blobs  # noqa: F401 - a fixture: AlexNet's blobs at full size


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
    return dict(
        root=root,
        data=root / "data",
        flat=root / "flat",
        w=root / "w.pt",
        img=root / "data/val/cat/0.png",
        index=root / "index.npz",
        state=state,
    )


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi")
)

# (id, make(tmp, base) -> (argv, the text that must name the thing), expected substring, status)
CONVERT = ["convert", "{X}", "{OUT}/o.pt"]
CASES = [
    # ---- model cards: checked before anything is built from them (§1: 150,000 / 10^7 classes) ----
    (
        "card-150000-classes",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], num_classes=150_000), CONVERT),
        "card num_classes=150000: expected an integer 1..100,000",
        2,
    ),
    (
        "card-1e7-classes",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], num_classes=10**7), CONVERT),
        "num_classes=10000000",
        2,
    ),
    (
        "card-classes-vs-weights",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], num_classes=50_000, classes=[]), CONVERT),
        "has shape (2, 1024), the model expects (50000, 1024)",
        2,
    ),
    (
        "card-num-classes-str",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], num_classes="x"), CONVERT),
        "card num_classes='x'",
        2,
    ),
    (
        "card-mean-str",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], mean="abc"), CONVERT),
        "card mean='abc'",
        2,
    ),
    (
        "card-classes-dict",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], classes={"a": 1}), CONVERT),
        "card classes=",
        2,
    ),
    (
        "card-input-negative",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], input_size=-5), CONVERT),
        "card input_size=-5",
        2,
    ),
    (
        "card-input-unfit",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], input_size=8, resize=8), CONVERT),
        "card input_size=8, but cifar_convnet takes sides 32..",
        2,
    ),
    (
        "card-model-kw-str",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], model_kw="x"), CONVERT),
        "card model_kw='x'",
        2,
    ),
    (
        "card-model-kw-unknown",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], model_kw={"groups": 3}), CONVERT),
        "unknown option(s) ['groups']",
        2,
    ),
    (
        "card-list",
        lambda t, b: (hf.torch_save(t / "c.pt", {"model": b["state"], "card": [1]}), CONVERT),
        "the model card is a list",
        2,
    ),
    (
        "card-missing-fields",
        lambda t, b: (
            hf.torch_save(t / "c.pt", {"model": b["state"], "card": {"model": "alexnet"}}),
            CONVERT,
        ),
        "the model card has no num_classes, input_size",
        2,
    ),
    (
        "card-state-not-tensors",
        lambda t, b: (hf.torch_save(t / "c.pt", {"model": {1: 2}, "card": CARD}), CONVERT),
        "its 'model' entry is not a state dict of tensors",
        2,
    ),
    (
        "safetensors-card-not-json",
        lambda t, b: (
            hf.write(
                t / "c.safetensors",
                hf.safetensors_bytes(
                    {
                        "__metadata__": {"card": "{nope"},
                        "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    },
                    ONE,
                ),
            ),
            CONVERT,
        ),
        "its metadata 'card': not JSON",
        2,
    ),
    (
        "evaluate-card-std-zero",
        lambda t, b: (
            hf.card_pt(t / "c.pt", b["state"], std=[0, 0, 0]),
            ["evaluate", "--weights", "{X}", "--data", str(b["data"]), "--workers", "0"],
        ),
        "card std=[0, 0, 0]",
        2,
    ),
    # ---- torch files: sizes the pickle claims (§1) ----
    (
        "pt-storage-claims-1e9",
        lambda t, b: (
            hf.torch_zip(t / "s.pt", {"w": hf.Tensor(hf.Storage("0", 10**9), (10**9,))}, {"0": ONE}),
            CONVERT,
        ),
        "not a readable weights-only torch file",
        2,
    ),
    (
        "pt-tensor-past-storage",
        lambda t, b: (
            hf.torch_zip(t / "s.pt", {"w": hf.Tensor(hf.Storage("0", 4), (10**9,))}, {"0": ONE}),
            CONVERT,
        ),
        "not a readable weights-only torch file",
        2,
    ),
    ("pt-zero-strides", lambda t, b: (hf.stride0(t / "z.pt"), CONVERT), "is backed by only 4 bytes", 2),
    (
        "pt-legacy-claims",
        lambda t, b: (hf.legacy_claims(t / "l.pt"), CONVERT),
        "its storages claim 40,000,000,000 bytes",
        2,
    ),
    (
        "pt-deflate-bomb",
        lambda t, b: (
            hf.torch_zip(
                t / "d.pt",
                {"w": hf.Tensor(hf.Storage("0", 4), (4,))},
                {"0": bytes(20_000_000)},
                zipfile.ZIP_DEFLATED,
            ),
            CONVERT,
        ),
        "would expand from",
        2,
    ),
    (
        "pt-declared-4gb",
        lambda t, b: (
            hf.declared(
                t / "d.pt",
                "archive/data/0",
                (
                    hf.torch_zip(
                        t / "x.pt",
                        {"w": hf.Tensor(hf.Storage("0", 4), (4,))},
                        {"0": bytes(2000)},
                        zipfile.ZIP_DEFLATED,
                    )
                ).read_bytes(),
            ),
            CONVERT,
        ),
        "would expand from",
        2,
    ),
    (
        "pt-flipped-digest",
        lambda t, b: (hf.write(t / "f.pt", hf.flip(b["w"].read_bytes(), 200)), CONVERT),
        "its SHA-256 does not match",
        2,
    ),
    (
        "pt-tar-format",
        lambda t, b: (hf.write(t / "t.pt", hf.tar_bytes({"storages": b"x", "pickle": b"x"})), CONVERT),
        "pre-2018 tar format",
        2,
    ),
    # ---- safetensors, caffemodel, caffe-tensorflow .npy ----
    (
        "safetensors-header-2^60",
        lambda t, b: (
            hf.write(t / "h.safetensors", hf.safetensors_bytes(b"{}", header_len=1 << 60)),
            CONVERT,
        ),
        "its header claims",
        2,
    ),
    (
        "safetensors-offsets",
        lambda t, b: (
            hf.write(
                t / "o.safetensors",
                hf.safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}}),
            ),
            CONVERT,
        ),
        "not a readable .safetensors",
        2,
    ),
    (
        "caffe-negative-dims",
        lambda t, b: (
            hf.write(
                t / "n.caffemodel",
                hf.caffemodel_bytes([(a, k, [hf.blob((-1, 4), ONE)]) for a, k in hf.ALEXNET_LAYERS]),
            ),
            CONVERT,
        ),
        "has a blob of shape (-1, 4)",
        2,
    ),
    (
        "caffe-dims-overflow",
        lambda t, b: (
            hf.write(
                t / "o.caffemodel",
                hf.caffemodel_bytes([(a, k, [hf.blob((2**32, 2**32))]) for a, k in hf.ALEXNET_LAYERS]),
            ),
            CONVERT,
        ),
        "holds 0 values for a blob of shape",
        2,
    ),
    (
        "caffe-one-blob",
        lambda t, b: (
            hf.write(
                t / "b.caffemodel",
                hf.caffemodel_bytes([(a, k, [hf.blob((1,), ONE[:4])]) for a, k in hf.ALEXNET_LAYERS]),
            ),
            CONVERT,
        ),
        "has no bias blob",
        2,
    ),
    (
        "caffe-150000-classes",
        lambda t, b: (
            hf.write(
                t / "c.caffemodel", hf.small_caffemodel((150_000, 1), np.ones(150_000, np.float32).tobytes())
            ),
            CONVERT,
        ),
        "num_classes must be an integer 1..100,000",
        2,
    ),
    (
        "npy-reconstruct-no-data",
        lambda t, b: (
            hf.write(t / "r.npy", hf.npy_bytes(hf.npy_header("|O", ()), hf.reconstruct_without_data())),
            CONVERT,
        ),
        "an array must carry its data",
        2,
    ),
    (
        "npy-object-shape",
        lambda t, b: (hf.write(t / "s.npy", hf.npy_bytes(hf.npy_header("|O", (10**9,)), b"")), CONVERT),
        "an object array of shape (1000000000,)",
        2,
    ),
    (
        "npy-header-not-dict",
        lambda t, b: (hf.write(t / "h.npy", hf.npy_bytes("[1, 2]")), CONVERT),
        "damaged .npy header",
        2,
    ),
    (
        "npy-layer-strings",
        lambda t, b: (
            hf.write(
                t / "l.npy",
                hf.npy_bytes(
                    hf.npy_header("|O", ()),
                    pickle.dumps({n: ["a", "b"] for n, _ in hf.ALEXNET_LAYERS}, protocol=2),
                ),
            ),
            CONVERT,
        ),
        "does not hold arrays of numbers",
        2,
    ),
    (
        "mean-npy-claims-3e10",
        lambda t, b: (
            hf.write(t / "m.npy", hf.npy_bytes(hf.npy_header("<f4", (3, 10**5, 10**5)), bytes(64))),
            ["convert", str(b["w"]), "{OUT}/o.pt", "--mean", "{X}"],
        ),
        "its header claims shape (3, 100000, 100000)",
        2,
    ),
    (
        "mean-fifo",
        lambda t, b: (hf.fifo(t / "m.binaryproto"), ["convert", str(b["w"]), "{OUT}/o.pt", "--mean", "{X}"]),
        "not a regular file",
        2,
    ),
    # ---- Keras: zip members and HDF5 datasets declare their sizes ----
    (
        "keras-zip-bomb",
        lambda t, b: (
            hf.keras_zip(t / "b.keras", {"config.json": b"{}", "model.weights.h5": bytes(20_000_000)}),
            CONVERT,
        ),
        "would expand from",
        2,
    ),
    (
        "keras-declared-4gb",
        lambda t, b: (
            hf.declared(
                t / "d.keras",
                "model.weights.h5",
                hf.keras_zip(
                    t / "x.keras", {"config.json": b"{}", "model.weights.h5": bytes(2000)}
                ).read_bytes(),
            ),
            CONVERT,
        ),
        "would expand from",
        2,
    ),
    (
        "keras-h5-declared",
        lambda t, b: (
            hf.write(
                t / "h.weights.h5",
                hf.h5_bytes({"layers/conv2d/vars/0": (10000, 10000, 1, 1), "layers/conv2d/vars/1": (1,)}),
            ),
            CONVERT,
        ),
        "declares 400,000,000 bytes",
        2,
    ),
    (
        "keras-config-types",
        lambda t, b: (
            hf.keras_zip(
                t / "c.keras",
                {"config.json": b'{"config": {"layers": [1, {"config": 5}]}}', "model.weights.h5": b"junk"},
            ),
            CONVERT,
        ),
        "not a readable Keras file",
        2,
    ),
    # ---- issue 18: HDF5 objects whose bytes are not in the file are not followed ----
    (
        "h5-external-storage",
        lambda t, b: (
            hf.h5_reaching_out(t / "x.weights.h5", "external", hf.write(t / "secret.bin", b"S" * 384)),
            CONVERT,
        ),
        "vars/1 is a dataset stored in an external file",
        2,
    ),
    (
        "h5-external-storage-fifo",
        lambda t, b: (hf.h5_reaching_out(t / "x.weights.h5", "external", hf.fifo(t / "f")), CONVERT),
        "stored in an external file",
        2,
    ),
    (
        "h5-external-link",
        lambda t, b: (hf.h5_reaching_out(t / "x.weights.h5", "link", hf.h5_target(t / "o.h5")), CONVERT),
        "vars/1 is an external link to",
        2,
    ),
    (
        "h5-external-link-fifo",
        lambda t, b: (hf.h5_reaching_out(t / "x.weights.h5", "link", hf.fifo(t / "f")), CONVERT),
        "is an external link to",
        2,
    ),
    (
        "h5-soft-link-out",
        lambda t, b: (hf.h5_reaching_out(t / "x.weights.h5", "soft", hf.h5_target(t / "o.h5")), CONVERT),
        "elsewhere is an external link to",
        2,
    ),
    (
        "h5-virtual-dataset",
        lambda t, b: (hf.h5_reaching_out(t / "x.weights.h5", "virtual", hf.h5_target(t / "o.h5")), CONVERT),
        "is a virtual dataset",
        2,
    ),
    (
        "h5-plugin-filter",
        lambda t, b: (hf.h5_reaching_out(t / "x.weights.h5", "filter", None), CONVERT),
        "compressed with filter 30999",
        2,
    ),
    (
        "keras-h5-external-link",
        lambda t, b: (
            hf.keras_zip(
                t / "x.keras",
                {
                    "config.json": b"{}",
                    "model.weights.h5": hf.h5_reaching_out(
                        t / "m.h5", "link", hf.h5_target(t / "o.h5")
                    ).read_bytes(),
                },
            ),
            CONVERT,
        ),
        "is an external link to",
        2,
    ),
    (
        "keras-config-padded-deflate",
        lambda t, b: (
            hf.write(
                t / "p.keras",
                hf.padded_zip(
                    {"config.json": b" " * 3_000_000 + b"{}", "model.weights.h5": b"x" * 100}, 40_000
                ),
            ),
            CONVERT,
        ),
        "(a zip bomb?)",
        2,
    ),
    (
        "npz-padded-deflate",
        lambda t, b: (
            hf.write(
                t / "i.npz",
                hf.padded_zip(
                    hf.index_members(features=hf.npy_of(np.zeros((3, 1_000_000), np.float32))), 200_000
                ),
            ),
            ["retrieve", "--index", "{X}", "--query-index", str(b["index"])],
        ),
        "(a zip bomb?)",
        2,
    ),
    # ---- shared references (a few hundred bytes standing for 2^40 items) and deep nesting ----
    (
        "npy-dag-bomb",
        lambda t, b: (hf.write(t / "d.npy", hf.npy_pickle(hf.dag(39))), CONVERT),
        "stands for more than 10,000,000 items once its shared references are counted",
        2,
    ),
    (
        "pt-dag-bomb",
        lambda t, b: (hf.torch_save(t / "d.pt", {"w": hf.dag(45, torch.zeros(1))}), CONVERT),
        "stands for more than 10,000,000 items",
        2,
    ),
    (
        "npz-pickle-member",
        lambda t, b: (
            hf.index(t / "i.npz", features=hf.npy_pickle(hf.dag(39))),
            ["retrieve", "--index", "{X}", "--query-index", str(b["index"])],
        ),
        "it holds Python objects: a pickle",
        2,
    ),
    (
        "npy-deep",
        lambda t, b: (
            hf.write(t / "n.npy", hf.npy_bytes(hf.npy_header("|O", ()), hf.deep_pickle(100_000))),
            CONVERT,
        ),
        "nested more than 100 levels deep",
        2,
    ),
    (
        "pt-deep",
        lambda t, b: (hf.torch_zip_pickle(t / "n.pt", hf.deep_pickle(100_000)), CONVERT),
        "nested more than 100 levels deep",
        2,
    ),
    (
        "card-deep",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], model_kw={"a": hf.deep(50)}), CONVERT),
        "the model card: nested more than 16 levels deep",
        2,
    ),
    (
        "safetensors-card-deep",
        lambda t, b: (
            hf.write(
                t / "c.safetensors",
                hf.safetensors_bytes(
                    {
                        "__metadata__": {"card": "[" * 100_000 + "]" * 100_000},
                        "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    },
                    ONE,
                ),
            ),
            CONVERT,
        ),
        "its metadata 'card': JSON nested more than 32 levels deep",
        2,
    ),
    (
        "card-model-kw-num-classes",
        lambda t, b: (hf.card_pt(t / "c.pt", b["state"], model_kw={"num_classes": 2}), CONVERT),
        "expected model options other than num_classes",
        2,
    ),
    ("weights-dev-zero", lambda t, b: (Path("/dev/zero"), CONVERT), "/dev/zero: not a regular file", 2),
    (
        "weights-fifo",
        lambda t, b: (hf.fifo(t / "w.pt"), ["predict", str(b["img"]), "--weights", "{X}"]),
        "not a regular file (a FIFO or a device?)",
        2,
    ),
    # ---- labels: class numbers are bounded before anything is sized by them (§1: 10^12) ----
    (
        "valtxt-class-1e12",
        lambda t, b: (
            hf.write(t / "val.txt", "0.png 1000000000000\n1.png 0\n"),
            ["stats", "--data", str(b["flat"]), "--labels", "{X}", "--out", "{OUT}/s.pt", "--workers", "0"],
        ),
        "expected '<file> <class number 0..999999>'",
        2,
    ),
    (
        "valtxt-fifo",
        lambda t, b: (
            hf.fifo(t / "val.txt"),
            ["stats", "--data", str(b["flat"]), "--labels", "{X}", "--out", "{OUT}/s.pt", "--workers", "0"],
        ),
        "not a regular file",
        2,
    ),
    (
        "cls-1e12",
        lambda t, b: (
            hf.shard(
                t / "sh" / "train-000000.tar", {"a.png": b["img"].read_bytes(), "a.cls": b"1000000000000"}
            ),
            ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0"],
        ),
        "should hold a class number 0..999999",
        2,
    ),
    (
        "cifar-label-1e12",
        lambda t, b: (
            hf.cifar_archive(hf.dir(t / "c") / "cifar-10-python.tar.gz", hf.cifar_batch(2, [10**12, 0])),
            ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0", "--resize", "0"],
        ),
        "has label 1000000000000, outside the 10 classes",
        2,
    ),
    (
        "idx-label-200",
        lambda t, b: (
            hf.idx_folder(t / "fashion", label_values=(200, 0)),
            ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0", "--resize", "0"],
        ),
        "has label 200, outside the 10 classes",
        2,
    ),
    (
        "synsets-count",
        lambda t, b: (
            hf.write(t / "syn.txt", "n01 cat\n"),
            ["predict", str(b["img"]), "--weights", str(b["w"]), "--class-names", "{X}", "--quiet"],
        ),
        "1 names for a 2-class network",
        2,
    ),
    (
        "class-index-json-types",
        lambda t, b: (
            hf.write(t / "labels.json", '{"0": 5, "1": 6}'),
            ["predict", str(b["img"]), "--weights", str(b["w"]), "--class-names", "{X}", "--quiet"],
        ),
        "expected Keras' imagenet_class_index.json",
        2,
    ),
    # ---- data: archives whose headers claim more than they hold (§1: zip and gzip bombs) ----
    (
        "idx-gzip-bomb",
        lambda t, b: (
            hf.idx_folder(t / "fashion", images=(2, 5000, 5000), image_body=bytes(50_000_000)),
            ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0", "--resize", "0"],
        ),
        "more than this",
        2,
    ),
    (
        "idx-dims-1e14",
        lambda t, b: (
            hf.idx_folder(t / "fashion", images=(10**6, 10**4, 10**4), image_body=b""),
            ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0", "--resize", "0"],
        ),
        "header claims (1000000, 10000, 10000)",
        2,
    ),
    (
        "cifar-member-bomb",
        lambda t, b: (
            hf.write(
                t / "c" / "cifar-10-python.tar.gz",
                hf.gz(hf.tar_bytes({"cifar-10-batches-py/data_batch_1": bytes(30_000_000)})),
            ),
            ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0", "--resize", "0"],
        ),
        "member cifar-10-batches-py/data_batch_1 claims 30,000,000 bytes",
        2,
    ),
    (
        "tar-member-size-claim",
        lambda t, b: (
            hf.shard(
                t / "sh" / "train-000000.tar",
                {"x/a.png": b["img"].read_bytes(), "x/b.png": b["img"].read_bytes()},
                {"x/a.png": 10**10},
            ),
            ["stats", "--data", "{X}", "--out", "{OUT}/s.pt", "--workers", "0"],
        ),
        "not a readable uncompressed tar (unexpected end of data)",
        2,
    ),
    (
        "braces-1e7",
        lambda t, b: (t / "train-{0..9999999}.tar", ["stats", "--data", "{X}", "--out", "{OUT}/s.pt"]),
        "expands to more than 100,000 shards",
        2,
    ),
    (
        "braces-nested",
        lambda t, b: (t / "t-{0..999}-{0..999}.tar", ["stats", "--data", "{X}", "--out", "{OUT}/s.pt"]),
        "expands to more than 100,000 shards",
        2,
    ),
    # ---- feature indexes and codes (retrieve, codes) ----
    (
        "npz-header-claims",
        lambda t, b: (
            hf.index(t / "i.npz", features=hf.npy_bytes(hf.npy_header("<f4", (10**9, 4096)), bytes(64))),
            ["retrieve", "--index", "{X}", "--query-index", str(b["index"])],
        ),
        "its header claims shape (1000000000, 4096)",
        2,
    ),
    (
        "npz-deflate-bomb",
        lambda t, b: (
            hf.write(
                t / "i.npz",
                hf.npz_bytes(
                    hf.index_members(features=hf.npy_of(np.zeros((3, 2_000_000), np.float32))),
                    zipfile.ZIP_DEFLATED,
                ),
            ),
            ["retrieve", "--index", "{X}", "--query-index", str(b["index"])],
        ),
        "a zip bomb?",
        2,
    ),
    (
        "npz-declared-4gb",
        lambda t, b: (
            hf.declared(t / "i.npz", "features.npy", hf.npz_bytes(hf.index_members(), zipfile.ZIP_DEFLATED)),
            ["codes", "train", "--index", "{X}", "--out", "{OUT}/c.pt"],
        ),
        "would expand from",
        2,
    ),
    (
        "npz-missing-key",
        lambda t, b: (
            hf.index(t / "i.npz", paths=None),
            ["codes", "train", "--index", "{X}", "--out", "{OUT}/c.pt"],
        ),
        "'paths' is missing",
        2,
    ),
    (
        "npz-query-dims",
        lambda t, b: (
            hf.index(t / "q.npz", features=hf.npy_of(np.ones((3, 7), np.float32))),
            ["retrieve", "--index", str(b["index"]), "--query-index", "{X}"],
        ),
        "7-d features, but --index",
        2,
    ),
    (
        "codes-dim-1e9",
        lambda t, b: (
            hf.torch_save(t / "c.pt", {"state": {}, "dim": 10**9, "bits": 8, "hidden": 1024}),
            [
                "retrieve",
                "--index",
                str(b["index"]),
                "--query-index",
                str(b["index"]),
                "--metric",
                "hamming",
                "--codes",
                "{X}",
            ],
        ),
        "not a codes file",
        2,
    ),
    # ---- run folders, checkpoints, statistics and configs ----
    (
        "report-config-alias-bomb",
        lambda t, b: (
            hf.run_with(t / "run", **{"config.yaml": ALIAS_BOMB}),
            ["report", "{X}", "--out", "{OUT}/r.html"],
        ),
        "nested YAML aliases",
        2,
    ),
    (
        "curves-metrics-garbage",
        lambda t, b: (
            hf.run_with(t / "run", **{"metrics.csv": "epoch,lr\nx,y\n"}),
            ["visualize", "curves", "{X}", "--out", "{OUT}/c.png"],
        ),
        "metrics.csv:2",
        2,
    ),
    (
        "resume-checkpoint-types",
        lambda t, b: (hf.ck(t.parent / "out" / "last.pt", config=[1]), ["train", "--resume", "{X}"]),
        "its config has the wrong type",
        2,
    ),
    (
        "resume-state-mismatch",
        lambda t, b: (
            hf.ck(
                t.parent / "out" / "last.pt",
                model={"x": torch.zeros(1)},
                card={"classes": ["cat", "dog"]},
                config={
                    "model": "cifar_convnet",
                    "data": str(b["data"]),
                    "resize": 32,
                    "crop": 32,
                    "workers": 0,
                    "epochs": 2,
                },
            ),
            ["train", "--resume", "{X}", "--quiet"],
        ),
        "does not fit the run it belongs to",
        2,
    ),
    (
        "stats-shapes",
        lambda t, b: (
            hf.ck(t / "s.pt"),
            [
                "train",
                "--model",
                "cifar_convnet",
                "--data",
                str(b["data"]),
                "--stats",
                "{X}",
                "--run-dir",
                "{OUT}/run",
                "--resize",
                "32",
                "--workers",
                "0",
                "--quiet",
            ],
        ),
        "not statistics of 3-channel images",
        2,
    ),
    (
        "config-fifo",
        lambda t, b: (hf.fifo(t / "c.yaml"), ["train", "--config", "{X}", "--data", str(b["data"])]),
        "not a regular file",
        2,
    ),
    (
        "config-types-name-the-file",
        lambda t, b: (
            hf.write(t / "c.yaml", "epochs: x\n"),
            ["train", "--config", "{X}", "--data", str(b["data"])],
        ),
        "config epochs (from",
        2,
    ),
]

# (id, argv, the flag, expected substring): hostile argument values
ARGS = [
    (
        "summary-1e7-classes",
        ["summary", "alexnet", "--num-classes", "10000000"],
        "--num-classes",
        "expected an integer 1..100,000",
    ),
    (
        "summary-input-side",
        ["summary", "alexnet", "--input-size", "100000"],
        "--input-size",
        "expected an integer 1..8,192",
    ),
    (
        "summary-input-unfit",
        ["summary", "alexnet", "--input-size", "64"],
        "--input-size",
        "alexnet takes 227x227 input (sides 227..258 work)",
    ),
    (
        "retrieve-k-0",
        ["retrieve", "--index", "{index}", "--query-index", "{index}", "--k", "0"],
        "--k",
        "expected an integer 1..",
    ),
    (
        "codes-bits-1e9",
        ["codes", "train", "--index", "{index}", "--out", "{OUT}/c.pt", "--bits", "1000000000"],
        "--bits",
        "1..65,536",
    ),
    (
        "evaluate-workers-1e5",
        ["evaluate", "--weights", "{w}", "--data", "{data}", "--workers", "100000"],
        "--workers",
        "0..256",
    ),
    (
        "prepare-shard-size-0",
        ["prepare", "{data}", "{OUT}/sh", "--shard-size", "0"],
        "--shard-size",
        "1..10,000,000",
    ),
    (
        "predict-topk-0",
        ["predict", "{img}", "--weights", "{w}", "--topk", "0"],
        "--topk",
        "expected an integer",
    ),
    (
        "experiment-target-nan",
        ["experiment", "ablations", "--target-error", "nan", "--out", "{OUT}/x"],
        "--target-error",
        "expected a number in [0, 1]",
    ),
    (
        "train-std-nan",
        ["train", "--data", "{data}", "--std", "nan", "nan", "nan"],
        "std",
        "must be 1 or 3 positive numbers",
    ),
    (
        "train-target-error-5",
        ["train", "--data", "{data}", "--target-train-error", "5"],
        "target_train_error",
        "must be in [0, 1]",
    ),
    (
        "train-batch-empty",
        ["train", "--data", "{data}", "--batch-size", ""],
        "--batch-size",
        "invalid int value",
    ),
    ("bench-steps-0", ["bench", "model", "--steps", "0"], "--steps", "expected an integer 1.."),
    (
        "predict-plot-no-extension",
        ["predict", "{img}", "--weights", "{w}", "--plot", "{OUT}/grid"],
        "--plot",
        "expected an image file name ending in .png",
    ),
    (
        "features-out-empty",
        ["features", "--weights", "{w}", "--data", "{data}", "--out", ""],
        "--out",
        "ending in .npz",
    ),
    (
        "evaluate-device-foo",
        ["evaluate", "--weights", "{w}", "--data", "{data}", "--device", "foo"],
        "--device",
        "not a device",
    ),
    ("train-seed-negative", ["train", "--data", "{data}", "--seed", "-1"], "seed", "must be between 0 and"),
    (
        "train-run-dir-empty",
        ["train", "--data", "{data}", "--run-dir", ""],
        "--run-dir",
        "empty; expected a folder",
    ),
    (
        "train-model-kw-value",
        ["train", "--data", "{data}", "--model-kw", '{"dropout": 5}'],
        "model_kw",
        "dropout must be a probability",
    ),
    (
        "train-model-kw-classes",
        ["train", "--data", "{data}", "--model-kw", '{"num_classes": 5}'],
        "model_kw",
        "num_classes come(s) from the data",
    ),
    (
        "weights-download-empty",
        ["weights", "--download", ""],
        "--download",
        "not a name from `alexnet weights`",
    ),
    (
        "train-model-kw-deep",
        ["train", "--data", "{data}", "--model-kw", '{"a":' * 5000 + "1" + "}" * 5000],
        "--model-kw",
        "JSON nested more than 32 levels deep",
    ),
    (
        "train-lr-mult-deep",
        ["train", "--data", "{data}", "--lr-mult", "[" * 100_000],
        "--lr-mult",
        "nested more than",
    ),
    (
        "train-lr-mult-nan",
        ["train", "--data", "{data}", "--lr-mult", '{"conv1": NaN}'],
        "--lr-mult",
        "NaN is not a JSON number",
    ),
    (
        "train-lr-mult-1e999",
        ["train", "--data", "{data}", "--lr-mult", '{"conv1": 1e999}'],
        "--lr-mult",
        "too large for a float",
    ),
    (
        "train-lr-mult-negative",
        ["train", "--data", "{data}", "--lr-mult", '{"conv1": -5}'],
        "--lr-mult",
        "each multiplier must be a number in [0, 1000], got {'conv1': -5}",
    ),
    (
        "finetune-lr-mult-nan",
        ["finetune", "--weights", "{w}", "--data", "{data}", "--lr-mult", "fc8=nan"],
        "--lr-mult",
        "expected NAME=NUMBER with NUMBER in [0, 1000]",
    ),
    (
        "report-out-name-too-long",
        ["report", "{OUT}/run", "--out", "{OUT}/" + "a" * 250 + ".html"],
        "--out",
        "a file name of 255 bytes; the page and its .parts folder need names of at most 249",
    ),
    (
        "train-force-resume-alone",
        ["train", "--data", "{data}", "--force-resume"],
        "--force-resume",
        "goes with --resume",
    ),
    (
        "features-out-not-npz",
        ["features", "--weights", "{w}", "--data", "{data}", "--out", "{OUT}/f.bin"],
        "--out",
        "ending in .npz",
    ),
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
    assert (
        len(lines) == 1
        or lines[0].startswith("alexnet train: ")
        and all(x.startswith("  ") for x in lines[1:-1])
    ), err
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
    changed = [
        p
        for p in set(before) | set(after)
        if before.get(p) != after.get(p)
        and not p.startswith(str(out))
        and not p.startswith(str(sandbox / "cache"))
    ]
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


def test_an_overlong_value_keeps_the_reason_in_its_line(base, sandbox, capsys):
    """A 100,000-character value quoted in a message is shown shortened in the middle: quoted in
    full, the 2,000-character line was all brackets, the reason cut off."""
    v = "[" * 100_000
    _one_line(
        capsys,
        main(["stats", "--data", str(base["data"]), "--split", v, "--out", str(sandbox / "out" / "s.pt")]),
        2,
        ["'" + "[" * 699 + "...(100,002 characters)..."],
        "split (found",
    )
    _one_line(
        capsys,
        main(["train", "--data", str(base["data"]), "--run-dir", v, "--quiet"]),
        2,
        ["[" * 700 + "...(100,001 characters)..." + "[" * 99 + ": "],
        "File name too long",
    )


# ---- the size bombs under an address-space limit ----------------------------------------------
BOMBS = [
    "card-150000-classes",
    "card-1e7-classes",
    "card-classes-vs-weights",
    "pt-storage-claims-1e9",
    "pt-zero-strides",
    "pt-legacy-claims",
    "pt-declared-4gb",
    "safetensors-header-2^60",
    "caffe-dims-overflow",
    "caffe-150000-classes",
    "npy-reconstruct-no-data",
    "mean-npy-claims-3e10",
    "keras-declared-4gb",
    "keras-h5-declared",
    "valtxt-class-1e12",
    "cls-1e12",
    "cifar-label-1e12",
    "idx-dims-1e14",
    "tar-member-size-claim",
    "braces-1e7",
    "npz-header-claims",
    "npz-declared-4gb",
    "codes-dim-1e9",
    "keras-config-padded-deflate",
    "npz-padded-deflate",
    "npy-dag-bomb",
    "pt-dag-bomb",
    "npz-pickle-member",
    "npy-deep",
    "pt-deep",
    "card-deep",
    "safetensors-card-deep",
]
CHILD = textwrap.dedent("""
    import contextlib, io, json, resource, sys, warnings
    import torch, alexnet.cli, alexnet.interop.pretrained, alexnet.analysis.retrieval, alexnet.data
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


def capped(argvs: list[list[str]], tmp_path: Path, limit: int = 384 << 20) -> list[tuple[int, str]]:
    """(status, stderr) of each command, run in one child process whose address space is capped
    at `limit` bytes above what it holds after importing torch and the package."""
    env = dict(os.environ, ALEXNET_CACHE=str(tmp_path / "cache"), PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("ALEXNET_DEBUG", None)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(limit)],
        input=json.dumps(argvs),
        text=True,
        capture_output=True,
        env=env,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])["results"]


def test_size_bombs_allocate_nothing_they_claim(base, tmp_path, monkeypatch):
    """The same refusals, in a child whose address space is capped at 384 MB above what it holds
    after importing torch and the package: allocating any claim above fails with MemoryError
    (or torch's allocator error), which would turn the expected line into another one."""
    cases = {c[0]: c for c in CASES}
    argvs, want = [], []
    for name in BOMBS:
        _, make, expected, status = cases[name]
        made, argv = make(hf.dir(tmp_path / name / "in"), base)
        argvs.append(
            [a.replace("{X}", str(made)).replace("{OUT}", str(tmp_path / name / "out")) for a in argv]
        )
        want.append((name, status, expected))
    for (name, status, expected), (got, err) in zip(want, capped(argvs, tmp_path)):
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
    assert (
        read_idx(tmp_path / "f" / "train-images-idx3-ubyte.gz").tolist()
        == np.arange(24).reshape(2, 3, 4).tolist()
    )


# ---- issue 18: what strangers' files and mirrors can still try ------------------------------------
def test_converted_h5_carries_only_the_files_own_bytes(tmp_path):
    """External storage, external links (to a file or a FIFO), virtual datasets and plugin
    filters are refused before any dataset is read: no output file, none of the outside bytes
    anywhere; the same file with the array inside it passes the check."""
    import h5py

    from alexnet.interop.keras import check_own_bytes

    secret = hf.write(tmp_path / "secret.bin", b"SECRET!!" * 48)
    outside = {
        "external": secret,
        "link": hf.h5_target(tmp_path / "o.h5"),
        "soft": hf.h5_target(tmp_path / "s.h5"),
        "virtual": hf.h5_target(tmp_path / "v.h5"),
        "filter": None,
    }
    for how, target in outside.items():
        src = hf.h5_reaching_out(tmp_path / how / "w.weights.h5", how, target)
        out = tmp_path / how / "out.safetensors"
        assert main(["convert", str(src), str(out)]) == 2
        assert not out.exists() and [p.name for p in (tmp_path / how).iterdir()] == ["w.weights.h5"]
    honest = tmp_path / "honest.weights.h5"
    with h5py.File(honest, "w") as f:
        for i in range(4):
            f.create_dataset(
                f"layers/batch_normalization/vars/{i}", data=np.ones(96, np.float32), compression="gzip"
            )
        f["layers/alias"] = h5py.SoftLink("/layers/batch_normalization")  # inside the file: fine
    with h5py.File(honest, "r") as f:
        check_own_bytes(f, honest)


def test_python2_pickles_load_and_run_nothing(tmp_path):
    """Guerzhoy's bvlc_alexnet.npy and CIFAR-10's batches were written by Python 2: protocol-2
    pickles whose array data are `str` (SHORT_BINSTRING/BINSTRING), written here opcode by opcode
    (hf.Py2, byte-exact: test_python2_pickles_are_byte_exact). numpy's own loader reads the same values; ours reads them with no global but
    numpy's array names."""
    import pickletools

    from alexnet.data.formats import cifar10_source
    from alexnet.interop.caffe import read_npy_dict

    g = np.random.default_rng(0)
    layers = {
        n.encode(): [
            g.standard_normal((5, 5, 3, 8), dtype=np.float32),
            g.standard_normal(8, dtype=np.float32),
        ]
        for n in ("conv1", "fc8")
    }
    raw = hf.py2_npy(layers)
    ops = {op.name for op, _, _ in pickletools.genops(raw[raw.index(b"\x80\x02") :])}
    assert {"SHORT_BINSTRING", "BINSTRING", "BUILD", "BINGET"} <= ops and "BINUNICODE" not in ops
    globals_ = [
        arg for op, arg, _ in pickletools.genops(raw[raw.index(b"\x80\x02") :]) if op.name == "GLOBAL"
    ]
    assert sorted(set(globals_)) == ["numpy dtype", "numpy ndarray", "numpy.core.multiarray _reconstruct"]
    path = hf.write(tmp_path / "bvlc_alexnet.npy", raw)
    ours = read_npy_dict(path)
    theirs = np.load(path, encoding="latin1", allow_pickle=True).item()  # how its users load it
    assert sorted(ours) == sorted(theirs) == ["conv1", "fc8"]
    for k in ours:
        for a, b, want in zip(ours[k], theirs[k], layers[k.encode()]):
            assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b) and np.array_equal(a, want)
    images = g.integers(0, 256, (3, 3072), dtype=np.uint8)
    batch = hf.Py2().dumps(
        {
            b"batch_label": b"training batch 1 of 5",
            b"labels": [3, 0, 9],
            b"data": images,
            b"filenames": [b"cat_1.png", b"a.png", b"truck_2.png"],
        }
    )
    meta = hf.Py2().dumps({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072})
    src = cifar10_source(hf.cifar_archive(tmp_path / "cifar-10-python.tar.gz", batch, meta), "train")
    assert src.labels.tolist() == [3, 0, 9] * 5 and src.classes[:2] == ["c0", "c1"]
    assert np.array_equal(src.images[:3].reshape(3, -1), images) and src.names[:1] == ["cat_1.png"]


# Written by Python 2.7.18 with numpy 1.16.6 (zlib, then base64): np.save of Guerzhoy's dict layout
# ({layer: [weights, biases]}, w(n, shape) below) and cPickle.dumps(..., 2) of a CIFAR-10 batch and
# its batches.meta (the dicts in Python 2's own iteration order, which the keys below follow)
PY2_NPY = (
    "eNql0EFq20AUxvEn22lcpW289FI7KRBMCl2YUhqtSshQx5QK0oWJJVlGhcTWyOMQ0wS8SUt2gV4gR8gJWh0hR8gRcoP2LyelONBVR/wE"
    "M/Pm0+h97wTvu58sOZYv7iCZxLn72nFP99xNxx2Oc5OHo4NxPkjK5Xfh4SRhfZKGWcLc29h0zpz/G/a8Eo+mR9msFY/zpHU0PTSfwzwPZ/ZBnsTj"
    "0cTk09jY2rqvskeD+11dUXIeWNG3D7rqKWvjYXtgZlli61pQ2WsrURbbK56qBtZpp9PZ/cVYvNS2iS56+smZXvWC6jBu63pPP/VSK/0baxOrqqry"
    "NSVt+OohbW2R9mY5TUgLmiLzQuQEGVL0sV+YaCn3WZlbOU/XLoL6nyMmSoIV/vb4pX7e0y+WL7LOAU/VeCxVM5z7KJbIv74m0sUOfLSxBQ8OmmigDsHd"
    "T5Fb3KDANa5wiTn68OFAypofrENK5XjLHAVkmzr46GOOS1zhGgVucIs7iM890EATDjxsoQ0fO+hiH32kyHDiP+pqo+xqbdHVxuPW0N1paKLWb7YT"
    "xaU="
)
PY2_BATCH = (
    "eNrt2tV701AYB+CktjXtBBkuBQYEK3Qw3J2FFRg7eClJmnZlbdqTJkBhgyHbGO7u7u7u7u7u7nYDo+Of4Hm+c/E9n/xu3vuToUrH"
    "JI00DlZmsYoXFa8/aOZ9kmD2Kh7ZzUoSG6TsksD7xIAsKbxMYXVeihIdeVesYYhMRHLZSVhLMySjTiSMWf8yDjnoFyisQyrFwhAMmZsJoxk1ItOs"
    "VmvC79wXKgwhcznJRCxBEKRKrdHqwsL1lMEYERkVnS9/gYIxhQoXKVqseImSpUqbypQtF1u+QkW6UuUqVauZq9ewxNWsFV+7Tt169Rs0bNS4SdNm"
    "zVu0bNW6Tdt2CUz7RGuHjp2SOiejLl27de/Rs5ett70Py/EOwelKcfdN9XhFnx9LAVnp139AcOCgtPTBQzKGDhs+IjMre2TOqNFjxo4bP2HipMlT"
    "pk6bPmPmrNlz5s6bv2DhosVLli5bvmLlqtVr1q5bv2Hjps1btm7bvmPnrt179u7bf+DgocNHjh47fuLkqdNnzp47f+HipctXrl67fuPmrdt37t67"
    "/+Dho8dPnj57/uLlq9dv3r57/+Hjp89fvn77/uPnL6ADHehABzrQgQ50oAMd6EAHOtCBDnSgAx3oQAc60IEOdKADHehABzrQgQ50oAP9v6fLHNJ5"
    "WE7wBHC4DetpRs0QjF5ABo6V+RR76IQpFCNLrFt0iy5TaG+ymHxOUzw2IL3T7RFE1isEsNGGI2ik51nZbjH7RReORFo21EQhw9+/TKn2uNAYLSjm"
    "P3dV1E4="
)
PY2_META = (
    "eNoVyUsOgjAQAFCFIgj4STyErLwJy1maZlpGaCyU6cediUdXV2/xPtmbtx00FhVZueBMgbM75x1UaPxqcSEWUGOKbnbKWOIChDJ+4B3k"
    "GiOXIAYizxXkgxt5D+Lhf9ZQTM4H4gZEmMzKLRTRJ/3kA8FlSbPUGCjIlbxUGPXEx/58hfI/LxP41G/adPsC8d4zZg=="
)


def test_python2_pickles_are_byte_exact(tmp_path):
    """The files that Python 2 really wrote (PY2_* above) are what hf.Py2 writes, byte for byte,
    so every Python 2 file of this corpus has their layout; ours load them, with their values."""
    import base64
    import zlib

    from alexnet.data.formats import cifar10_source
    from alexnet.interop.caffe import read_npy_dict

    npy, batch, meta = (zlib.decompress(base64.b64decode(x)) for x in (PY2_NPY, PY2_BATCH, PY2_META))

    def w(n, shape):
        return (np.arange(n, dtype=np.float32) / 8 - 4).reshape(shape)

    layers = {b"fc8": [w(6, (3, 2)), w(2, (2,))], b"conv1": [w(64, (4, 4, 1, 4)), w(4, (4,))]}
    images = (np.arange(3 * 3072) % 251).astype(np.uint8).reshape(3, 3072)
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    assert hf.py2_npy(layers, align=64) == npy
    assert (
        hf.Py2().dumps(
            {
                b"data": images,
                b"labels": [3, 0, 9],
                b"batch_label": b"training batch 1 of 5",
                b"filenames": [b"cat_1.png", b"a.png", b"truck_2.png"],
            }
        )
        == batch
    )
    assert hf.Py2().dumps({b"label_names": names, b"num_cases_per_batch": 10000, b"num_vis": 3072}) == meta
    ours = read_npy_dict(hf.write(tmp_path / "bvlc_alexnet.npy", npy))
    assert sorted(ours) == ["conv1", "fc8"]
    for k, arrays in ours.items():
        assert all(
            a.dtype == np.float32 and np.array_equal(a, b)
            for a, b in zip(arrays, layers[k.encode()], strict=True)
        )
    src = cifar10_source(hf.cifar_archive(tmp_path / "cifar-10-python.tar.gz", batch, meta), "train")
    assert src.labels.tolist() == [3, 0, 9] * 5 and src.classes == [n.decode() for n in names]
    assert np.array_equal(src.images[:3].reshape(3, -1), images) and src.names[:3] == [
        "cat_1.png",
        "a.png",
        "truck_2.png",
    ]


def test_escapes_never_reach_the_terminal(base, sandbox):
    """Class names from a card and file names from a folder print as visible escapes: no ESC
    (which would clear the screen) and no newline (which would print a forged error line)."""
    forged = "alexnet predict: error: forged"
    w = hf.card_pt(sandbox / "in" / "c.pt", base["state"], classes=["cat\x1b[2J", f"dog\n{forged}"])
    folder = hf.dir(sandbox / "in" / "imgs")
    (folder / "good.png").write_bytes(base["img"].read_bytes())
    (folder / f"bad\n{forged}.png").write_bytes(b"not an image")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexnet",
            "predict",
            str(folder),
            "--weights",
            str(w),
            "--topk",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # warnings as printed, not as pytest's
    assert r.returncode == 0, r.stderr
    out, err = r.stdout, r.stderr
    for text in (out, err):
        assert "\x1b" not in text and not any(line.startswith(forged) for line in text.splitlines()), text
    assert "cat\\x1b[2J" in out and f"dog\\n{forged}" in out and len(out.splitlines()) == 3
    assert err.count("\n") == 1 and f"bad\\n{forged}.png" in err and "warning: skipping" in err


def test_card_and_index_text_is_escaped(base, sandbox, capsys):
    """A card's source (which convert prints) and an index's paths and class names (which retrieve
    prints) are strangers' text too: printed as visible escapes."""
    title = "x\x1b]0;pwned\x07"  # would retitle the terminal window
    w = hf.card_pt(sandbox / "in" / "s.pt", base["state"], source=title)
    assert main(["convert", str(w), str(sandbox / "out" / "o.pt")]) == 0
    idx = hf.index(
        sandbox / "in" / "esc.npz",
        paths=hf.npy_of(np.array(["a\x1b[2J.png", "b\nalexnet retrieve: error: x", "c\u202egnp.exe"])),
        classes=hf.npy_of(np.array(["cat\x1b[31m", "dog"])),
    )
    assert main(["retrieve", "--index", str(idx), "--query-index", str(idx), "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, out
    assert not any(line.startswith("alexnet retrieve: error") for line in out.splitlines()), out
    for text in (
        "(x\\x1b]0;pwned\\x07)",
        "a\\x1b[2J.png",
        "b\\nalexnet retrieve: error: x",
        "c\\u202egnp.exe",
        "cat\\x1b[31m",
    ):
        assert text in out, (text, out)


def test_evaluate_a_20000_class_card_on_two_images(base, tmp_path):
    """The confusion matrix follows the images, not C x C: 20,000 classes on 2 images once asked
    for 3.2 GB (and 100,000 for 80 GB); under the address-space cap the whole evaluation fits,
    and confusion.csv holds the 2 images' cells."""
    from alexnet.models import create_model

    state = create_model("cifar_convnet", num_classes=20_000, seed=0).state_dict()
    w = hf.card_pt(tmp_path / "big.pt", state, num_classes=20_000, classes=[f"k{i}" for i in range(20_000)])
    data = hf.dir(tmp_path / "data" / "val" / "k7")
    for i in range(2):
        (data / f"{i}.png").write_bytes(base["img"].read_bytes())
    out = tmp_path / "ev"
    [(status, err)] = capped(
        [
            [
                "evaluate",
                "--weights",
                str(w),
                "--data",
                str(tmp_path / "data"),
                "--workers",
                "0",
                "--out",
                str(out),
            ]
        ],
        tmp_path,
    )
    assert status == 0, err
    rows = list(csv.reader(open(out / "confusion.csv")))
    assert rows[0] == ["true", "predicted", "images"] and len(rows) <= 3
    assert sum(int(r[2]) for r in rows[1:]) == 2 and all(r[0] == "k7" for r in rows[1:])
    per_class = list(csv.DictReader(open(out / "per_class.csv")))
    assert len(per_class) == 20_000 and per_class[7]["images"] == "2"


def test_a_16bit_image_decodes_in_about_8bit_memory(base, tmp_path):
    """A 6000 x 6000 16-bit PNG (a few hundred kB: one grey) once cost several float64 copies of
    itself in to_8bit (288 MB each); converted in its own integer width, a strip at a time, it
    predicts in a child capped at 384 MB above its start, as the 8-bit image does."""
    from PIL import Image

    big = tmp_path / "grey16.png"
    Image.fromarray(np.full((6000, 6000), 32768, np.uint16)).save(big, compress_level=1)
    assert big.stat().st_size < 2 << 20
    [(status, err)] = capped(
        [["predict", str(big), "--weights", str(base["w"]), "--quiet", "--topk", "1"]], tmp_path
    )
    assert status == 0, err


def test_confusion_is_sparse_and_the_report_bounded():
    """Tally keeps one cell number per image; the report's table covers the classes that occur
    (at most 50, else the most frequent mistakes), never C x C."""
    from alexnet.analysis.report import _confusion
    from alexnet.evaluation.metrics import Tally

    names = [f"c{i}" for i in range(100_000)]
    t = Tally(100_000)
    labels = torch.tensor([5, 5, 7, 99_999])
    logits = torch.zeros(4, 100_000)
    logits[[0, 1, 2, 3], [5, 7, 7, 5]] = 1  # right, 5 -> 7, right, 99999 -> 5
    t.add(logits, labels, 0.0)
    true, pred, n = t.confusion()
    assert list(zip(true.tolist(), pred.tolist(), n.tolist())) == [
        (5, 5, 1),
        (5, 7, 1),
        (7, 7, 1),
        (99_999, 5, 1),
    ]
    images, acc = t.per_class()
    assert (
        (images[5], images[7], images[99_999], images.sum()) == (2, 1, 1, 4) and acc[5] == 0.5 and acc[7] == 1
    )
    table = _confusion(t, names)
    assert table.count("<tr>") == 4 and "c99999" in table and "c6" not in table  # 3 classes occur
    many = Tally(100)
    many.add(torch.eye(100)[torch.arange(100).roll(1)], torch.arange(100), 0.0)  # every image wrong
    page = _confusion(many, [f"k{i}" for i in range(100)])
    assert "100 classes occur: the 20 most frequent mistakes" in page and page.count("<tr>") == 21


def test_resume_refuses_another_runs_files(base, tmp_path, capsys):
    """An edited config.yaml (which --resume would silently revert) and a last.pt copied from
    another run (whose weights would continue under this run's metrics) are refused, naming both
    files, unless --force-resume."""
    import shutil

    def run(name, seed):
        argv = [
            "train",
            "--model",
            "cifar_convnet",
            "--data",
            str(base["data"]),
            "--run-dir",
            str(tmp_path / name),
            "--resize",
            "32",
            "--epochs",
            "2",
            "--limit-batches",
            "1",
            "--batch-size",
            "2",
            "--workers",
            "0",
            "--seed",
            str(seed),
            "--steps-this-invocation",
            "1",
            "--quiet",
        ]
        assert main(argv) == 0, capsys.readouterr().err
        return tmp_path / name

    a, b = run("a", 0), run("b", 1)
    yaml_a = (a / "config.yaml").read_text()
    (a / "config.yaml").write_text(yaml_a.replace("lr: 0.05", "lr: 0.02"))
    capsys.readouterr()
    _one_line(
        capsys,
        main(["train", "--resume", str(a), "--quiet"]),
        2,
        [str(a / "config.yaml")],
        f"and {a / 'last.pt'} do not belong together: lr is 0.02 in config.yaml but 0.05 in last.pt",
    )
    (a / "config.yaml").write_text(yaml_a)
    shutil.copy(b / "last.pt", a / "last.pt")
    line = _one_line(
        capsys,
        main(["train", "--resume", str(a), "--quiet"]),
        2,
        [str(a / "last.pt")],
        "last.pt is from another run (run_id",
    )
    assert "--force-resume" in line
    assert main(["train", "--resume", str(a), "--force-resume", "--quiet"]) == 0
    config = (a / "config.yaml").read_text()
    assert config != yaml_a and "seed: 1" in config  # rewritten from the checkpoint it continued


# ---- mirrors that misbehave, caches with links in them ---------------------------------------------
@pytest.fixture
def mirror(sandbox, monkeypatch):
    """A hostile loopback mirror for every name in `alexnet weights`, and download limits that
    let the slow cases end in a second or two instead of minutes."""
    from alexnet import download

    m = hf.HostileMirror()
    monkeypatch.setenv("ALEXNET_WEIGHTS_MIRROR", m.url)
    monkeypatch.setattr(download, "LIMITS", download.Limits(timeout=5, deadline=60, min_rate=1000, window=1))
    yield m
    m.close()


# (id, weights name, mirror behaviour, changes to the limits / table entry, status, expected)
DOWNLOADS = [
    (
        "huge-declared",
        "torchvision",
        "huge",
        {},
        1,
        "the server declares 1,000,000,000,000 bytes, more than the 244,408,911 expected",
    ),
    (
        "endless-no-size",
        "bvlc_alexnet.npy",
        "endless",
        {"max_size": 2 << 20},
        1,
        "the server sends more than the 2,097,152 bytes expected",
    ),
    (
        "endless-known-size",
        "torchvision",
        "endless",
        {"size": 2 << 20},
        1,  # no length said: the table's size
        "the server sends more than the 2,097,152 bytes expected",
    ),
    ("trickle", "caffenet", "trickle", {}, 1, "slower than 1,000 bytes/s over 1 s"),
    (
        "trickle-deadline",
        "caffenet",
        "trickle",
        {"min_rate": 0, "deadline": 1.5},
        1,
        "not finished after 1.5 s",
    ),
    ("html-200", "torchvision", "html", {}, 1, "the server sent an HTML page, not the file"),
]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", DOWNLOADS, ids=[c[0] for c in DOWNLOADS])
def test_hostile_mirror_gives_one_line(case, mirror, sandbox, monkeypatch, capsys):
    import dataclasses

    from alexnet import download
    from alexnet.interop import hub

    _, name, how, change, status, expected = case
    entry = hub.WEIGHTS[name]
    mirror.behaviour[entry.file] = how
    entry_change = {k: v for k, v in change.items() if k in ("max_size", "size")}
    if entry_change:
        monkeypatch.setitem(hub.WEIGHTS, name, dataclasses.replace(entry, **entry_change))
    limits = {k: v for k, v in change.items() if k in ("min_rate", "deadline")}
    monkeypatch.setattr(download, "LIMITS", dataclasses.replace(download.LIMITS, **limits))
    before = _tree(sandbox)
    _one_line(capsys, main(["weights", "--download", name]), status, [entry.file], expected)
    cache = sandbox / "cache" / "weights"
    part = cache / (entry.file + ".part")
    assert not (cache / entry.file).exists() and (not part.exists() or part.stat().st_size <= (2 << 20))
    changed = [
        p
        for p in set(before) | set(_tree(sandbox))
        if not p.startswith(str(cache))
        and before.get(p) != _tree(sandbox).get(p)
        and p != str(sandbox / "cache")
    ]
    assert not changed, changed


# (id, what to put in the cache first, expected): each refused before a byte is transferred
IN_THE_WAY = [
    (
        "part-symlink",
        lambda c, out: os.symlink(out, c / "alexnet-owt-7be5be79.pth.part"),
        "alexnet-owt-7be5be79.pth.part: a symbolic link where the download keeps its own file",
    ),
    (
        "lock-symlink",
        lambda c, out: os.symlink(out, c / "alexnet-owt-7be5be79.pth.lock"),
        "alexnet-owt-7be5be79.pth.lock: a symbolic link where the download keeps its own file",
    ),
    (
        "part-folder",
        lambda c, out: (c / "alexnet-owt-7be5be79.pth.part").mkdir(),
        "alexnet-owt-7be5be79.pth.part: not a regular file where the download keeps its own file",
    ),
    (
        "dest-folder",
        lambda c, out: (c / "alexnet-owt-7be5be79.pth").mkdir(),
        "alexnet-owt-7be5be79.pth: a folder is where the download goes",
    ),
    (
        "pin-symlink",
        lambda c, out: os.symlink(out, c / "bvlc_alexnet.npy.sha256"),
        "bvlc_alexnet.npy.sha256: a symbolic link; a pinned SHA-256 must be a file in the cache",
    ),
]


@pytest.mark.parametrize("case", IN_THE_WAY, ids=[c[0] for c in IN_THE_WAY])
def test_links_and_folders_in_the_cache_are_not_followed(case, mirror, sandbox, capsys):
    """A symbolic link where the download writes (.part, .lock) would let it write outside the
    cache; a folder at the destination once failed after the whole transfer, leaving a .part."""
    _, put, expected = case
    cache = hf.dir(sandbox / "cache" / "weights")
    outside = hf.write(sandbox / "outside.txt", b"precious")
    if "lock" in case[0]:
        outside.unlink()  # the lock would be created there
    put(cache, outside)
    there = sorted(os.listdir(cache))
    name = "bvlc_alexnet.npy" if "pin" in case[0] else "torchvision"
    _one_line(capsys, main(["weights", "--download", name]), 2, [str(cache)], expected)
    assert mirror.log == [] and sorted(os.listdir(cache)) in (
        there,
        sorted(there + ["alexnet-owt-7be5be79.pth.lock"]),
    )
    assert outside.read_bytes() == b"precious" if "lock" not in case[0] else not outside.exists()


@pytest.fixture(scope="module")
def py2_bvlc(caffe_blobs, tmp_path_factory) -> Path:  # noqa: F811 - the imported fixture
    """Guerzhoy's bvlc_alexnet.npy at full size, in Python 2's layout (random values)."""
    from test_interop import to_npy_dict

    path = tmp_path_factory.mktemp("py2") / "bvlc_alexnet.npy"
    path.write_bytes(hf.py2_npy({k.encode(): v for k, v in to_npy_dict(caffe_blobs).items()}))
    return path


def test_python2_bvlc_alexnet_npy_by_name(py2_bvlc, mirror, sandbox, capsys):
    """The real file's layout downloads, passes its structure check, is pinned and predicts."""
    mirror.files["bvlc_alexnet.npy"] = py2_bvlc.read_bytes()
    with pytest.warns(UserWarning, match="is now pinned"):
        assert (
            main(["predict", str(_img(sandbox)), "--weights", "bvlc_alexnet.npy", "--quiet", "--topk", "1"])
            == 0
        )
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert (sandbox / "cache" / "weights" / "bvlc_alexnet.npy.sha256").is_file()


def test_read_only_cache_uses_a_hand_placed_file(py2_bvlc, sandbox, monkeypatch, capsys):
    """A correct bvlc_alexnet.npy put by hand in a read-only shared cache loads: its pin cannot
    be written, which is said in a warning, and nothing in the cache changes."""
    import errno
    import shutil

    import alexnet.interop.hub

    cache = hf.dir(sandbox / "cache" / "weights")
    shutil.copy(py2_bvlc, cache / "bvlc_alexnet.npy")
    monkeypatch.setenv("ALEXNET_WEIGHTS_MIRROR", "http://127.0.0.1:9")  # no download may be needed

    def read_only(path, text):  # what a read-only mount answers (root ignores a chmod)
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(alexnet.interop.hub, "atomic_write_text", read_only)
    cache.chmod(0o555)
    try:
        before = _tree(cache)
        with pytest.warns(UserWarning, match=r"could not be pinned in .*Read-only file system"):
            assert main(["predict", str(_img(sandbox)), "--weights", "bvlc_alexnet.npy", "--quiet"]) == 0
        assert _tree(cache) == before
    finally:
        cache.chmod(0o755)


def _img(sandbox: Path) -> Path:
    return write_image(sandbox / "in" / "photo.jpg", (300, 260))
