"""Every setting resolved from the model's recipe, the model's input size and the data's native
size; config values checked for type and range when they are read."""

import csv
import subprocess
import sys

import pytest
import yaml

from alexnet.cli import main
from alexnet.models import list_models, model_info
from alexnet.training import build_config
from alexnet.training.config import PRESETS
from conftest import write_image


def folder(root, size, n=3):
    for split in ("train", "val"):
        for c in ("a", "b"):
            for i in range(n):
                write_image(root / split / c / f"{i}.png", size if size else (30 + 7 * i, 33), seed=i)
    return root


def test_every_model_names_an_existing_recipe():
    expected = {
        "alexnet": "paper",
        "alexnet_caffe": "caffe",
        "caffenet": "caffe",
        "alexnet_owt": "owt",
        "alexnet_d2l": "d2l",
        "cifar_convnet": "cifar10-quick",
        "alexnet_bn": "keras-bn",
    }
    for name in list_models():
        assert model_info(name).recipe in PRESETS, name
    for name, recipe in expected.items():
        assert model_info(name).recipe == recipe


def test_bare_model_gets_its_recipe_and_native_size(tmp_path):
    data = folder(tmp_path / "d", (32, 32))
    cfg = build_config(None, None, flags={"model": "cifar_convnet", "data": str(data)})
    quick = PRESETS["cifar10-quick"]
    assert (cfg.lr, cfg.pixel_scale, cfg.pca_std, cfg.epochs) == (quick["lr"], 1.0, 0.0, quick["epochs"])
    assert cfg.resize is None and cfg.crop == 32  # 32x32 images: stored as they are, model input 32
    assert "native size (32x32" in cfg.resolved_from["resize"]
    assert cfg.resolved_from["crop"].startswith("recipe cifar10-quick")
    assert cfg.data == str(data)  # the recipe's own dataset name does not replace --data
    # the paper net on the same images: the paper recipe, upsampled to 256, crop 227 from the model
    paper = build_config(None, None, flags={"model": "alexnet", "data": str(data)})
    assert (paper.lr, paper.pixel_scale, paper.pca_std, paper.resize, paper.crop) == (
        0.01,
        255.0,
        0.1,
        256,
        227,
    )
    assert paper.resolved_from["crop"] == "the input size of alexnet"
    owt = build_config(None, None, flags={"model": "alexnet_owt", "data": str(data)})
    assert (owt.crop, owt.random_resized_crop, owt.mean) == (224, True, "channel")


def test_explicit_settings_win_and_mixed_sizes_get_a_stored_size(tmp_path):
    data = folder(tmp_path / "d", None)  # photos of different sizes
    cfg = build_config(None, None, flags={"model": "cifar_convnet", "data": str(data), "lr": 0.2})
    assert cfg.lr == 0.2 and cfg.resolved_from["lr"] == "--lr"
    assert cfg.resize == round(32 * 256 / 224) and "mixed sizes" in cfg.resolved_from["resize"]
    preset = build_config("paper", None, flags={"model": "cifar_convnet", "data": str(data)})
    assert (preset.lr, preset.pixel_scale, preset.resize, preset.crop) == (0.01, 255.0, 256, 32)
    given = build_config(None, None, model="cifar_convnet", data=str(data), resize=None, crop=30)
    assert given.resize is None and given.crop == 30  # explicit values are never second-guessed


def test_resolution_is_printed_once_and_stored(tmp_path, capsys):
    data = folder(tmp_path / "d", (32, 32), n=2)
    run = tmp_path / "run"
    assert (
        main(
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
                "--quiet",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert err.count("recipe cifar10-quick (the default for cifar_convnet") == 2  # the header and one group
    assert "resize=None" in err and "native size" in err
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["resize"] is None and stored["lr"] == PRESETS["cifar10-quick"]["lr"]
    assert stored["resolved_from"]["batch_size"] == "--batch-size"


@pytest.mark.parametrize(
    "text,match",
    [
        ("lr: fast\n", "config lr (from {f}): expected float"),
        ("batch_size: 1.5\n", "config batch_size (from {f}): expected int"),
        ("model_kw: [1]\n", "config model_kw (from {f}): expected dict"),
        ("flip: 3\n", "config flip (from {f}): expected bool"),
        ("std: [0.2, x, 0.2]\n", "config std (from {f}): expected a list of numbers"),
        ("epochs: 0\n", "config epochs (from {f}) must be between 1"),
        ("momentum: 1.5\n", "config momentum (from {f}) must be in"),
        ("model: alexnett\n", "valid names"),
        ("- just\n- a list\n", "expected a mapping"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                for p, c in zip("abcdefgh", "bcdefghi")
            ),
            "nested YAML aliases",
        ),
    ],
)
def test_bad_config_files_give_one_line(tmp_path, capsys, text, match):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    assert main(["train", "--config", str(f), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert match.format(f=f) in err and err.strip().count("\n") == 0  # the key and the file it is in


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--config", "{tmp}"], "is a folder"),
        (["--model-kw", "[1]"], "argument --model-kw: expected a JSON object such as"),
        (["--device", "foo"], "--device foo: not a device; expected cpu"),
        (["--run-dir", "{tmp}/file"], "is a file"),
        (["--crop", "300", "--resize", "256"], "crop=300 is larger than resize=256"),
    ],
)
def test_bad_flags_give_one_line(tmp_path, capsys, argv, match):
    (tmp_path / "file").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["train", "--data", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and err.strip().count("\n") == 0


def test_bare_cifar_command_learns(data_root, tmp_path):
    """issue 11 §4: `alexnet train --model cifar_convnet --data cifar10-jpeg.tar` alone must learn:
    within 200 steps the training loss is well below ln 10 = 2.30."""
    run = tmp_path / "bare"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexnet",
            "train",
            "--model",
            "cifar_convnet",
            "--data",
            str(data_root / "cifar10-jpeg.tar"),
            "--run-dir",
            str(run),
            "--limit-batches",
            "200",
            "--epochs",
            "1",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    row = next(csv.DictReader(open(run / "metrics.csv")))
    # mean over all 200 steps (the first ones near 2.30) and the loss on the 10,000 test images after them
    assert float(row["train_loss"]) < 2.0 and float(row["val_loss"]) < 1.75, row
    assert float(row["val_top1_err"]) < 0.7, row


def test_statistics_of_another_size_are_one_line(tmp_path, capsys):
    from alexnet.data import Decoding, compute_stats, open_dataset, save_stats

    data = folder(tmp_path / "d", (32, 32))
    stats = tmp_path / "stats32.pt"
    save_stats(
        compute_stats(open_dataset(str(data), "train", Decoding(None, None)), workers=0, progress=False),
        stats,
    )
    argv = [
        "train",
        "--model",
        "cifar_convnet",
        "--data",
        str(data),
        "--run-dir",
        str(tmp_path / "run"),
        "--resize",
        "36",
        "--stats",
        str(stats),
        "--workers",
        "0",
        "--quiet",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--stats {stats}: its mean image is 32x32, the images are stored at 36x36" in err
