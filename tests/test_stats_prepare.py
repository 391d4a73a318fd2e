"""`alexnet stats` against numpy; `alexnet prepare` shards, reading them back, resuming; data bench."""

import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.data import Decoding, compute_stats, load_stats, open_dataset, open_source


def test_stats_equal_numpy(image_folder, tmp_path):
    ds = open_dataset(str(image_folder), "train", Decoding(16, 16))
    got = compute_stats(ds, batch_size=5, workers=0, progress=False)
    # the same decoded images, stacked by numpy
    imgs = np.stack([ds[i][0].numpy() for i in range(len(ds))]).astype(np.float64) / 255
    pixels = imgs.transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(got["mean_image"].numpy(), imgs.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got["mean"].numpy(), pixels.mean(1), rtol=1e-6)
    np.testing.assert_allclose(got["std"].numpy(), pixels.std(1), rtol=1e-5)
    cov = np.cov(pixels, bias=True)
    np.testing.assert_allclose(got["cov"].numpy(), cov, rtol=1e-5, atol=1e-8)
    w, v = np.linalg.eigh(cov)
    np.testing.assert_allclose(got["eigval"].numpy(), w[::-1], rtol=1e-4, atol=1e-8)
    for i in range(3):  # eigenvectors up to sign
        assert abs(abs(float(got["eigvec"][:, i].double() @ torch.from_numpy(v[:, 2 - i]))) - 1) < 1e-4
    assert got["n_images"] == 12


def test_stats_cli_writes_a_safe_file(image_folder, tmp_path, capsys):
    out = tmp_path / "s" / "stats.pt"
    assert (
        main(["stats", "--data", str(image_folder), "--out", str(out), "--resize", "16", "--workers", "0"])
        == 0
    )
    assert "12 images (0 skipped)" in capsys.readouterr().out
    s = torch.load(out, weights_only=True)
    assert s["mean_image"].shape == (3, 16, 16) and load_stats(out)["n_images"] == 12
    with pytest.raises(FileNotFoundError, match="alexnet stats"):
        load_stats(tmp_path / "missing.pt")


def test_prepare_writes_webdataset_shards_and_resumes(image_folder, tmp_path, capsys):
    dst = tmp_path / "shards"
    argv = ["prepare", str(image_folder), str(dst), "--resize", "32", "--shard-size", "5", "--workers", "0"]
    assert main(argv) == 0
    assert sorted(p.name for p in dst.glob("*.tar")) == [
        "train-000000.tar",
        "train-000001.tar",
        "train-000002.tar",
        "val-000000.tar",
        "val-000001.tar",
    ]
    with tarfile.open(dst / "train-000000.tar") as tf:
        names = tf.getnames()
        assert names[:2] == ["000000000.jpg", "000000000.cls"] and len(names) == 10
        img = Image.open(tf.extractfile(names[0]))
        assert min(img.size) == 32  # shorter side resized, aspect kept
    train, val = open_source(str(dst), "train"), open_source(str(dst), "val")
    orig = open_source(str(image_folder), "train")
    assert train.labels.tolist() == orig.labels.tolist() and train.classes == orig.classes and len(val) == 6
    assert len(train.groups) == 3
    # resume: a missing shard is rewritten, finished ones are left alone
    keep = (dst / "train-000000.tar").stat().st_mtime_ns
    (dst / "train-000001.tar").unlink()
    assert main(argv) == 0
    assert (dst / "train-000001.tar").exists() and (dst / "train-000000.tar").stat().st_mtime_ns == keep


def test_bench_data_cli(image_folder, capsys):
    assert (
        main(
            [
                "bench",
                "data",
                "--data",
                str(image_folder),
                "--workers",
                "0",
                "--batch-size",
                "4",
                "--resize",
                "40",
                "--crop",
                "32",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "alexnet loader" in out and "naive Pillow loop" in out and "speed-up" in out


def test_stats_of_another_size_are_refused_at_native_size(tmp_path, capsys):
    """A mean image made at --resize 40 cannot be subtracted from 32x32 images kept at native size."""
    from conftest import write_image

    for split in ("train", "val"):
        for c in ("a", "b"):
            for i in range(2):
                write_image(tmp_path / "ds" / split / c / f"{i}.png", (32, 32), seed=i)
    assert (
        main(
            [
                "stats",
                "--data",
                str(tmp_path / "ds"),
                "--resize",
                "40",
                "--out",
                str(tmp_path / "s40.pt"),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    run = [
        "train",
        "--model",
        "cifar_convnet",
        "--data",
        str(tmp_path / "ds"),
        "--resize",
        "0",
        "--crop",
        "32",
        "--mean",
        "image",
        "--workers",
        "0",
        "--epochs",
        "1",
        "--limit-batches",
        "1",
        "--quiet",
    ]
    capsys.readouterr()
    assert main(run + ["--stats", str(tmp_path / "s40.pt"), "--run-dir", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "  --resize 0 (the data's native size): resize=None" in err
    assert err[-1] == (
        f"alexnet train: error: --stats {tmp_path / 's40.pt'}: its mean image is 40x40, the images are kept at "
        "their native 32x32 (make the statistics with `alexnet stats --resize 0`, or use --mean channel)"
    )
    assert (
        main(
            [
                "stats",
                "--data",
                str(tmp_path / "ds"),
                "--resize",
                "0",
                "--out",
                str(tmp_path / "s0.pt"),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert main(run + ["--stats", str(tmp_path / "s0.pt"), "--run-dir", str(tmp_path / "r2")]) == 0
