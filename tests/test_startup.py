"""A start-up that fails leaves nothing behind, so the corrected command simply runs again
(docs/training.md): errors found before the statistics pass, no half-made run, no empty folders."""

import pytest

from alexnet.cli import main
from alexnet.training import Trainer, build_config, loop, setup
from conftest import write_image
from test_training import tiny


@pytest.fixture
def folder32(tmp_path):
    """CIFAR-like: 32x32 images, 2 classes, train 4 + val 2 each."""
    root = tmp_path / "d32"
    for split, n in (("train", 4), ("val", 2)):
        for c, cls in enumerate(["a", "b"]):
            for i in range(n):
                write_image(root / split / cls / f"{i}.png", (32, 32), seed=10 * c + i)
    return root


def no_stats(*a, **k):
    raise AssertionError("the statistics pass ran before the error was found")


def train_args(data, run, *more):
    return [
        "train",
        "--data",
        str(data),
        "--run-dir",
        str(run),
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--limit-batches",
        "1",
        "--quiet",
        *more,
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        # stored at native 32x32: a 36-px crop (which cifar_convnet takes) does not fit
        (
            ["--preset", "cifar10-quick", "--crop", "36"],
            "--crop 36 is larger than the stored 32x32 images of --data {data} (give --resize 36 or more, or a smaller --crop)",
        ),
        # fits in the stored 48x48, but is no side cifar_convnet takes
        (
            ["--model", "cifar_convnet", "--resize", "48", "--crop", "44"],
            "--crop 44: cifar_convnet takes 32x32 input (sides 32..39 work)",
        ),
    ],
)
def test_crop_errors_come_before_the_statistics_and_leave_nothing(
    folder32, tmp_path, monkeypatch, capsys, flags, message
):
    run = tmp_path / "runs" / "r"
    monkeypatch.setattr(setup, "get_stats", no_stats)
    assert main(train_args(folder32, run, *flags)) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "alexnet train: error: " + message.format(
        data=folder32
    )
    assert not (tmp_path / "runs").exists()  # the folders this call made are gone too
    monkeypatch.undo()
    fixed = [f for f in flags if f not in ("36", "44")]
    fixed[fixed.index("--crop") + 1 : fixed.index("--crop") + 1] = ["32"]
    assert main(train_args(folder32, run, *fixed)) == 0  # the corrected command is not refused
    assert (run / "last.pt").exists()


def test_failure_before_the_first_checkpoint_removes_the_run_files(
    image_folder, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    args = train_args(image_folder, run, "--model", "cifar_convnet", "--resize", "36", "--crop", "32")

    def fail(self, batch):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(loop.Trainer, "_step", fail)
    assert main(args) == 1
    assert not run.exists()  # config.yaml and stats.pt were written, and removed again
    monkeypatch.undo()
    assert main(args) == 0
    assert {"config.yaml", "stats.pt", "last.pt"} <= {p.name for p in run.iterdir()}


def test_failure_after_a_checkpoint_keeps_the_run(image_folder, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(tiny(image_folder, run, epochs=2), progress=False)
    real = loop.Trainer._step

    def fail_in_epoch_2(self, batch):
        if self.epoch == 1:
            raise RuntimeError("simulated")
        return real(self, batch)

    monkeypatch.setattr(loop.Trainer, "_step", fail_in_epoch_2)
    with pytest.raises(RuntimeError):
        trainer.fit()
    assert {"config.yaml", "stats.pt", "last.pt", "metrics.csv"} <= {p.name for p in run.iterdir()}


def test_failed_start_ups_leave_no_empty_folders(image_folder, tmp_path, capsys):
    assert main(train_args(tmp_path / "nonexist", tmp_path / "a" / "run", "--model", "cifar_convnet")) == 2
    assert not (tmp_path / "a").exists()
    mine = tmp_path / "mine"  # a folder that was there before is kept, empty as it was
    mine.mkdir()
    assert main(train_args(tmp_path / "nonexist", mine, "--model", "cifar_convnet")) == 2
    assert mine.is_dir() and not list(mine.iterdir())
    assert main(["prepare", str(tmp_path / "nonexist"), str(tmp_path / "dst" / "shards")]) == 2
    assert not (tmp_path / "dst").exists()
    capsys.readouterr()


def test_finetune_resume_needs_no_weights_and_refuses_others(image_folder, tmp_path, capsys):
    src = tmp_path / "src"
    Trainer(tiny(image_folder, src, epochs=1), progress=False).fit()
    weights = str(src / "best.pt")
    run = tmp_path / "ft"
    common = ["--workers", "0", "--quiet"]
    new = ["--data", str(image_folder), "--run-dir", str(run), "--batch-size", "4", *common]
    assert main(["finetune", *new]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "alexnet finetune: error: --weights: required (the pretrained weights to start from), unless --resume RUN"
    )
    assert main(["finetune", "--weights", weights, "--train-layers", "fc9", *new]) == 2
    assert "unknown layer(s) ['fc9']" in capsys.readouterr().err
    assert not run.exists()  # nor its empty folder
    assert (
        main(
            [
                "finetune",
                "--weights",
                weights,
                *new,
                "--epochs",
                "2",
                "--max-steps",
                "2",
                "--resize",
                "36",
                "--crop",
                "32",
            ]
        )
        == 0
    )
    assert main(["finetune", "--resume", str(run), "--weights", str(src / "last.pt"), *common]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        f"alexnet finetune: error: --weights {src / 'last.pt'}: the run in {run} started from "
        f"{weights}; --resume continues from its own checkpoint (leave out --weights)"
    )
    assert main(["finetune", "--resume", str(run), "--max-steps", "4", *common]) == 0
    assert main(["finetune", "--resume", str(run), "--weights", weights, "--max-steps", "5", *common]) == 0
    from alexnet.training.checkpoint import load_checkpoint

    assert load_checkpoint(run)["step"] == 5


def test_config_file_zero_means_native_size_as_the_flag_does(tmp_path, folder32):
    f = tmp_path / "c.yaml"
    f.write_text("resize: 0\ncrop: 0\nmodel: cifar_convnet\n")
    cfg = build_config(None, str(f), data=str(folder32))
    flag = build_config(None, None, data=str(folder32), model="cifar_convnet", resize=None, crop=None)
    assert (cfg.resize, cfg.crop) == (flag.resize, flag.crop) == (None, None)
    f.write_text("resize: -1\n")
    with pytest.raises(ValueError, match="resize .* must be between 1 and 8,192, got -1"):
        build_config(None, str(f), data=str(folder32))


def test_a_tar_without_a_val_split_names_val_data(tmp_path, capsys):
    """A tar holding train/<class>/ only: the error says where the validation images can come from."""
    import io
    import tarfile

    from PIL import Image

    from alexnet.cli import main

    with tarfile.open(tmp_path / "d.tar", "w") as tf:
        for c in ("a", "b"):
            for i in range(2):
                buf = io.BytesIO()
                Image.new("RGB", (32, 32), (40 * i, 90, 9)).save(buf, "PNG")
                info = tarfile.TarInfo(f"train/{c}/{i}.png")
                info.size = len(buf.getvalue())
                tf.addfile(info, io.BytesIO(buf.getvalue()))
    assert (
        main(
            [
                "train",
                "--model",
                "cifar_convnet",
                "--data",
                str(tmp_path / "d.tar"),
                "--workers",
                "0",
                "--run-dir",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"alexnet train: error: {tmp_path / 'd.tar'}: has no 'val' split (found train); give the validation "
        "images with --val-data"
    )
    assert not (tmp_path / "run").exists()
