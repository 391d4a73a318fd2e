"""Features, retrieval, binary codes and the paper's pictures."""

import csv
import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

import alexnet
from alexnet.analysis.codes import load_codes, save_codes, train_codes
from alexnet.analysis.features import hamming, load_index, mean_average_precision, neighbours
from alexnet.analysis.figures import curves, filter_grid, neighbours_grid
from alexnet.card import Card
from alexnet.cli import main
from alexnet.interop.pretrained import save_pretrained


def test_neighbours_put_the_query_first_and_in_order():
    rng = np.random.default_rng(0)
    index = rng.normal(size=(50, 16)).astype(np.float32)
    d, i = neighbours(index[[3, 7]], index, 5)
    assert i[:, 0].tolist() == [3, 7] and np.allclose(d[:, 0], 0, atol=1e-6)
    assert (np.diff(d, axis=1) >= 0).all()
    brute = np.sqrt(((index[3] - index) ** 2).sum(1))
    assert i[0].tolist() == np.argsort(brute, kind="stable")[:5].tolist()


def test_hamming_matches_numpy_and_codes_have_the_bits():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 2, (4, 40)).astype(bool), rng.integers(0, 2, (6, 40)).astype(bool)
    want = (a[:, None, :] != b[None, :, :]).sum(-1)
    assert np.array_equal(hamming(np.packbits(a, 1), np.packbits(b, 1)), want)
    feats = rng.normal(size=(64, 32)).astype(np.float32)
    model = train_codes(feats, bits=20, epochs=2, batch_size=16, progress=False)
    codes = model.encode(feats)
    assert codes.shape == (64, 3) and codes.dtype == np.uint8  # 20 bits -> 3 bytes
    assert np.unpackbits(codes, axis=1)[:, 20:].sum() == 0  # padding bits stay zero
    d, i = neighbours(codes[:5], codes, 3, "hamming")
    assert (d[:, 0] == 0).all()


def test_codes_file_round_trip(tmp_path):
    feats = np.random.default_rng(2).normal(size=(32, 8)).astype(np.float32)
    model = train_codes(feats, bits=16, epochs=1, progress=False)
    save_codes(model, tmp_path / "c.pt")
    assert np.array_equal(load_codes(tmp_path / "c.pt").encode(feats), model.encode(feats))
    with pytest.raises(FileNotFoundError, match="alexnet codes train"):
        load_codes(tmp_path / "none.pt")


def test_mean_average_precision_by_hand():
    q = np.array([0, 1])
    found = np.array([[0, 1, 0], [0, 0, 0]])
    # query 0: relevant at ranks 1 and 3 -> (1/1 + 2/3) / 2; query 1: none -> 0
    assert mean_average_precision(q, found) == pytest.approx(((1 + 2 / 3) / 2 + 0) / 2)


def test_features_retrieve_and_codes_cli(image_folder, tmp_path, capsys):
    model = alexnet.create_model("alexnet_owt", num_classes=3, seed=0)
    w = save_pretrained(
        model,
        Card(
            model="alexnet_owt",
            num_classes=3,
            input_size=224,
            std=[0.229, 0.224, 0.225],
            pixel_scale=1.0,
            classes=["ant", "bee", "cat"],
        ),
        tmp_path / "w.safetensors",
    )
    idx = tmp_path / "f.npz"
    assert (
        main(
            [
                "features",
                "--weights",
                str(w),
                "--data",
                str(image_folder),
                "--split",
                "train",
                "--layer",
                "fc7",
                "--out",
                str(idx),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    index = load_index(idx)
    assert index["features"].shape == (12, 4096) and index["features"].dtype == np.float32
    assert index["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    query = image_folder / "train" / "bee" / "2.jpg"
    capsys.readouterr()
    assert (
        main(
            [
                "retrieve",
                "--index",
                str(idx),
                "--query",
                str(query),
                "--k",
                "3",
                "--out",
                str(tmp_path / "grid.png"),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    first = lines[1].split()
    assert float(first[0]) == pytest.approx(0, abs=1e-3) and first[-1].endswith("bee/2.jpg")
    # query + 3, each captioned in two lines (label, then distance)
    assert Image.open(tmp_path / "grid.png").size == (4 * (96 + 6) + 14, 96 + 6 + 2 * 12 + 6)
    assert (
        main(
            [
                "codes",
                "train",
                "--index",
                str(idx),
                "--bits",
                "16",
                "--epochs",
                "2",
                "--out",
                str(tmp_path / "codes.pt"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "retrieve",
                "--index",
                str(idx),
                "--query-index",
                str(idx),
                "--k",
                "4",
                "--metric",
                "hamming",
                "--codes",
                str(tmp_path / "codes.pt"),
            ]
        )
        == 0
    )
    assert "mAP@4 (hamming)" in capsys.readouterr().out
    # the index as its own queries: leave-one-out, so no query finds itself, and mAP is measured
    # independently from the distances (the same label among the 11 others: 3 of them)
    assert main(["retrieve", "--index", str(idx), "--query-index", str(idx), "--k", "100"]) == 0
    out = capsys.readouterr().out.splitlines()
    blocks = [out[i : i + 12] for i in range(0, 12 * 12, 12)]
    assert all(b[0] not in [line.split()[-1] for line in b[1:]] for b in blocks)
    feats, labels = index["features"].astype(np.float64), index["labels"]
    d = ((feats[:, None] - feats[None]) ** 2).sum(-1) ** 0.5
    aps = []
    for q in range(12):
        order = [i for i in np.argsort(d[q], kind="stable") if i != q]
        hits = np.cumsum(labels[order] == labels[q])
        aps.append(np.mean([hits[r] / (r + 1) for r in range(11) if labels[order[r]] == labels[q]]))
    assert out[-1] == f"mAP@11 (euclidean): {np.mean(aps):.4f} over 12 queries"


def test_an_index_works_from_another_folder_and_knows_its_weights(
    image_folder, tmp_path, monkeypatch, capsys
):
    """The index records the weights' absolute path and SHA-256: `retrieve` run elsewhere finds
    them, and refuses them once their bytes have changed."""
    model = alexnet.create_model("cifar_convnet", num_classes=3, seed=0)
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    save_pretrained(
        model,
        Card(model="cifar_convnet", num_classes=3, input_size=32, resize=36, classes=["ant", "bee", "cat"]),
        work / "w.safetensors",
    )
    monkeypatch.chdir(work)
    assert (
        main(
            [
                "features",
                "--weights",
                "w.safetensors",
                "--data",
                str(image_folder),
                "--split",
                "train",
                "--layer",
                "pool5",
                "--out",
                "f.npz",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    index = load_index(work / "f.npz")
    assert str(index["weights"]) == str(work / "w.safetensors")
    assert str(index["weights_sha256"]) == hashlib.sha256((work / "w.safetensors").read_bytes()).hexdigest()
    monkeypatch.chdir(elsewhere)
    query = image_folder / "train" / "cat" / "1.jpg"
    capsys.readouterr()
    assert main(["retrieve", "--index", str(work / "f.npz"), "--query", str(query), "--k", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[-1].endswith("cat/1.jpg")
    save_pretrained(
        alexnet.create_model("cifar_convnet", num_classes=3, seed=1),
        Card(model="cifar_convnet", num_classes=3, input_size=32, resize=36),
        work / "w.safetensors",
    )  # other weights, same name
    assert main(["retrieve", "--index", str(work / "f.npz"), "--query", str(query)]) == 2
    assert "whose bytes have changed since" in capsys.readouterr().err


def test_filter_grid_tiles_and_towers(tmp_path):
    w = torch.randn(96, 3, 11, 11)
    img = Image.open(filter_grid(w, tmp_path / "f.png", groups=2, scale=2))
    block = 8 * (11 * 2 + 2) + 2
    assert img.size == (2 * block + 8, 6 * (11 * 2 + 2) + 2)  # 48 kernels a tower: 6 rows of 8


def test_curves_and_neighbours_pictures(tmp_path):
    rows = [
        dict(epoch=e, train_top1_err=1 - e / 10, val_top1_err=1 - e / 12, lr=0.01 if e < 3 else 0.001)
        for e in range(1, 6)
    ]
    img = Image.open(curves(rows, tmp_path / "c.png"))
    assert img.size == (640, 360)
    px = np.asarray(img)
    assert (px[:, :, 0] > 150).any() and ((px[:, :, 2] > 150) & (px[:, :, 0] < 100)).any()  # two series
    q = [torch.zeros(3, 8, 8, dtype=torch.uint8)] * 2
    out = neighbours_grid(
        q, [q * 2, q * 2], [["a\n1.0", "b\n2.0", "c\n3.0", "d\n4.0"]] * 2, tmp_path / "n.png", cell=10
    )
    assert Image.open(out).size == (5 * 16 + 14, 2 * (10 + 6 + 2 * 12) + 6)  # label and distance: a line each


def test_visualize_cli(tmp_path):
    model = alexnet.create_model("alexnet", seed=0)
    w = save_pretrained(model, Card(model="alexnet", num_classes=1000, input_size=227), tmp_path / "a.pt")
    assert main(["visualize", "filters", "--weights", str(w), "--out", str(tmp_path / "f.png")]) == 0
    assert Image.open(tmp_path / "f.png").size[0] > 2 * 8 * 11 * 4
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "metrics.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, ["epoch", "train_top1_err", "val_top1_err", "lr"])
        wr.writeheader()
        wr.writerows(
            [
                dict(epoch=1, train_top1_err=0.9, val_top1_err=0.8, lr=0.01),
                dict(epoch=2, train_top1_err=0.7, val_top1_err=0.75, lr=0.001),
            ]
        )
    assert main(["visualize", "curves", str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert main(["visualize", "curves", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2


def test_report_is_self_contained(image_folder, tmp_path):
    import re

    from alexnet.training import Trainer, build_config

    run = tmp_path / "run"
    cfg = build_config(
        None,
        None,
        model="cifar_convnet",
        data=str(image_folder),
        resize=36,
        crop=32,
        batch_size=4,
        epochs=2,
        workers=0,
        run_dir=str(run),
        schedule="constant",
    )
    Trainer(cfg, progress=False).fit()
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out), "--workers", "0"]) == 0
    page = out.read_text()
    for section in (
        "Final metrics",
        "Learning curves",
        "Confusion matrix",
        "conv1 filters",
        "Sample predictions",
        "Configuration",
    ):
        assert section in page
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', page)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)  # nothing outside itself
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert not (tmp_path / "report.html.parts").exists()


def test_predictions_figure_marks_the_correct_label_red_as_fig4_does():
    import tempfile

    from alexnet.analysis.figures import BLUE, RED, prediction_grid

    img = torch.full((3, 8, 8), 255, dtype=torch.uint8)
    top = [("tench", 0.6), ("goldfish", 0.3)]
    with tempfile.TemporaryDirectory() as d:
        px = np.asarray(
            Image.open(
                prediction_grid([img, img], [top, top], f"{d}/p.png", cell=40, truth=["goldfish", None])
            )
        )
    bar = lambda col, row: tuple(px[10 + 40 + 16 + 14 * row + 5, 10 + col * 50 + 1])  # noqa: E731
    assert (bar(0, 0), bar(0, 1)) == (BLUE, RED)  # the correct label is the second guess: its bar is red
    assert (bar(1, 0), bar(1, 1)) == (BLUE, BLUE)  # correct label unknown: no red bar


def _red(img: np.ndarray, x0: int, x1: int) -> int:
    """Pixels of the tower diagram's crossing colour between two x positions."""
    band = img[:, x0:x1].astype(int)
    return int(((band[..., 0] > 150) & (band[..., 1] < 90) & (band[..., 2] < 90)).sum())


def test_tower_diagram_crosses_where_the_towers_talk(tmp_path):
    from alexnet.analysis.figures import tower_diagram

    img = np.asarray(Image.open(tower_diagram(alexnet.create_model("alexnet"), tmp_path / "t.png")))
    step = (img.shape[1] - 60) // 8  # eight learned layers, one column each
    gap = lambda i: _red(img[:200], 60 + (i - 1) * step + step - 30, 60 + i * step)  # noqa: E731 into layer i
    # §3.2: conv3, fc6, fc7 and fc8 read both towers; conv2, conv4, conv5 only their own
    assert [gap(i) > 20 for i in range(1, 8)] == [False, True, False, False, True, True, True]


def test_pca_directions_shift_by_the_eigenpairs(tmp_path):
    from alexnet.analysis.figures import pca_directions

    flat = torch.full((3, 32, 32), 128, dtype=torch.uint8)
    eigval, eigvec = torch.tensor([0.2, 0.02, 0.002]), torch.eye(3)
    out = np.asarray(
        Image.open(pca_directions(flat, eigval, eigvec, tmp_path / "p.png", std=0.1, steps=(0, 3), cell=32))
    ).astype(int)
    x, y = 40 + 38 + 16, 16 + 16  # row p1, column +3 sigma: red + 3 x 0.1 x 0.2 x 255 = 15.3 levels
    assert tuple(out[y, x]) == (128 + 15, 128, 128) and tuple(out[y, 40 + 16]) == (128, 128, 128)
    assert tuple(out[y + 38, x]) == (128, 128 + 2, 128)  # p2: green, ten times less
