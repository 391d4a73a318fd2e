"""benchmarks/hostile_sweep.py's hostile feature indexes, codes files, run folders, statistics, label
files and datasets."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hostile_files as hf  # noqa: E402
from hostile_corpus import pickle_dumps  # noqa: E402


def index_variants(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    big = hf.npy_bytes(hf.npy_header("<f4", (10**9, 4096)), bytes(64))
    for label, members, comp in [
        ("features-huge", hf.index_members(features=big), 0),
        ("features-bomb", hf.index_members(features=hf.npy_of(np.zeros((8000, 4096), np.float32))), 8),
        ("features-str", hf.index_members(features=hf.npy_of(np.array(["a", "b"]))), 0),
        ("features-1d", hf.index_members(features=hf.npy_of(np.ones(3, np.float32))), 0),
        (
            "features-obj",
            hf.index_members(features=hf.npy_bytes(hf.npy_header("|O", (3,)), pickle_dumps([1, 2, 3]))),
            0,
        ),
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
    for label, obj in [
        ("dim-huge", {"state": {}, "dim": 10**9, "bits": 8, "hidden": 1024}),
        ("bits-huge", {"state": {}, "dim": 4, "bits": 10**9, "hidden": 1024}),
        ("hidden-huge", {"state": {}, "dim": 4, "bits": 8, "hidden": 10**9}),
        ("dim-str", {"state": {}, "dim": "x", "bits": 8, "hidden": 1024}),
        ("dim-neg", {"state": {}, "dim": -4, "bits": 8, "hidden": 1024}),
        ("state-wrong", {"state": {"a": torch.zeros(1)}, "dim": 4, "bits": 8, "hidden": 16}),
        ("list", [1]),
        ("missing", {"dim": 4}),
    ]:
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

    for label, text in [
        ("config-list", "- 1\n"),
        (
            "config-bomb",
            "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
            + "".join(
                f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                for p, c in zip("abcdefgh", "bcdefghi")
            ),
        ),
        ("config-notyaml", "a: [\n"),
        ("config-nodata", "model: alexnet\n"),
        ("config-data-int", "data: 5\nval_data: [1]\n"),
    ]:
        d = copy(label)
        (d / "config.yaml").write_text(text)
        yield label, d
    for label, text in [
        ("metrics-garbage", "epoch,train_loss\nx,y\n"),
        ("metrics-binary", "\xff\x00\x01"),
        ("metrics-nocols", "a,b\n1,2\n"),
        ("metrics-ragged", "epoch,train_top1_err\n1\n2,3,4,5\n"),
    ]:
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
    for label, stats in [
        ("stats-empty", {}),
        (
            "stats-shapes",
            {
                "mean": torch.zeros(7),
                "std": torch.zeros(7),
                "eigval": torch.zeros(7),
                "eigvec": torch.zeros(2),
                "mean_image": torch.zeros(2),
            },
        ),
        ("stats-list", [1]),
    ]:
        p = out / f"{label}.pt"
        save_pt(stats, p)
        yield label, p


def label_variants(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    for label, text in [
        ("cls-huge", "0.png 1000000000000\n1.png 0\n2.png 0\n"),
        ("cls-neg", "0.png -1\n1.png 0\n2.png 0\n"),
        ("cls-word", "0.png cat\n"),
        ("cls-one-col", "0.png\n"),
        ("cls-missing", "9.png 0\n"),
        ("cls-float", "0.png 1.5\n1.png 0\n2.png 0\n"),
        ("cls-huge-line", "x" * 2_000_000 + " 1\n"),
        ("syn-one-col", "n01\n"),
        ("syn-empty", ""),
        ("json-list", "[1, 2]"),
        ("json-int-values", '{"0": 5, "1": 6}'),
        ("json-short", '{"0": ["n01"]}'),
        ("json-gaps", '{"0": ["a", "b"], "5": ["c", "d"]}'),
        ("json-bad", "{"),
    ]:
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
    for label, kw in [
        ("idx-dims-huge", dict(images=(10**6, 10**4, 10**4), image_body=b"")),
        ("idx-dims-mismatch", dict(images=(2, 28, 28), image_body=bytes(5))),
        ("idx-labels-huge", dict(label_values=(200, 0))),
        ("idx-labels-count", dict(labels=(1,), label_values=(0,))),
        ("idx-ndim-0", dict(images=(), image_body=b"")),
        ("idx-plain", dict(gz=False)),
        ("idx-bomb", dict(images=(2, 28, 28), image_body=bytes(300_000_000))),
    ]:
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
