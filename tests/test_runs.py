"""A run writes only where it is told, and its files can be trusted (issue 11 §2); the loops never
wait for the device per step (issue 13 §2)."""

import collections
import errno
import hashlib
import os
import shutil
import signal
import warnings

import pytest
import torch

from alexnet.cli import main
from alexnet.errors import BadInput, RunFailure
from alexnet.fileio import load_pt, save_pt
from alexnet.training import NonFiniteLoss, Trainer, build_config, loop, setup
from alexnet.training.checkpoint import load_checkpoint
from test_training import tiny


def digests(folder):
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_resuming_a_copy_writes_into_the_copy_only(image_folder, tmp_path, capsys):
    original = tmp_path / "original"
    Trainer(tiny(image_folder, original, epochs=1), progress=False).fit()
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)  # its last.pt names original/ as its run_dir
    before = digests(original)
    (copy / ".last.pt.12345.tmp").write_bytes(b"left by a process killed with SIGKILL")
    assert main(["train", "--resume", str(copy), "--epochs", "2", "--quiet"]) == 0
    assert not list(copy.glob(".*.tmp"))
    assert digests(original) == before, "resuming the copy changed the original"
    ck = load_checkpoint(copy)
    assert (ck["epoch"], ck["step"], ck["config"]["run_dir"]) == (2, 6, str(copy))
    assert [r.split(",")[0] for r in (copy / "metrics.csv").read_text().split()[1:]] == ["1", "2"]
    assert str(copy) in capsys.readouterr().out


def test_a_folder_holding_a_run_is_refused_unless_overwrite(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "train",
        "--model",
        "cifar_convnet",
        "--data",
        str(image_folder),
        "--resize",
        "36",
        "--crop",
        "32",
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--run-dir",
        str(run),
        "--quiet",
        "--limit-batches",
        "1",
    ]
    assert main(args) == 0
    stats = (run / "stats.pt").read_bytes()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--run-dir {run} already holds a run" in err and f"--resume {run}" in err and "--overwrite" in err
    for name in ("last.pt", "best.pt", "metrics.csv", "steps.csv", "summary.json", "config.yaml"):
        (run / name).unlink()  # a stale stats.pt alone is a run too: it would be reused
    shutil.rmtree(run / "tb", ignore_errors=True)  # (TensorBoard's events, where it is installed)
    assert main(args) == 2 and "(stats.pt)" in capsys.readouterr().err
    other = tmp_path / "other"  # other data: --overwrite must compute its own statistics
    shutil.copytree(image_folder, other)
    for p in (other / "train").rglob("*.jpg"):
        p.write_bytes((image_folder / "val" / "ant" / "0.png").read_bytes())
    assert main(args[:4] + [str(other)] + args[5:] + ["--overwrite"]) == 0
    assert (run / "stats.pt").read_bytes() != stats and load_checkpoint(run)["step"] == 1
    (tmp_path / "file").write_text("x")
    assert main(args[:-3] + ["--run-dir", str(tmp_path / "file")]) == 2
    assert "is a file; expected a folder" in capsys.readouterr().err


def test_every_flipped_byte_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "ck.pt"
    save_pt({"model": {"w": torch.randn(3000)}, "step": 7, "config": {"lr": 0.1}}, path)
    data = path.read_bytes()
    assert load_pt(path)["step"] == 7 and os.listdir(tmp_path) == ["ck.pt"]  # no temporary left
    flipped = tmp_path / "flipped.pt"
    for i in range(60):  # spread over the file: header, tensor data, zip directory, footer
        pos = i * (len(data) - 1) // 59
        flipped.write_bytes(data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1 :])
        with pytest.raises(BadInput) as e:
            load_pt(flipped)
        assert str(e.value).startswith(f"{flipped}: damaged") and "\n" not in str(e.value), pos
    legacy = tmp_path / "legacy.pt"  # written by plain torch.save, before digests: loads, with a warning
    torch.save({"step": 3}, legacy)
    with pytest.warns(UserWarning, match="no integrity digest"):
        assert load_pt(legacy)["step"] == 3
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(BadInput, match="junk.pt: damaged or not a checkpoint"):
        load_pt(tmp_path / "junk.pt")


def test_resume_of_a_damaged_checkpoint_is_one_line(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(tiny(image_folder, run, epochs=1, limit_batches=1), progress=False).fit()
    data = bytearray((run / "last.pt").read_bytes())
    data[len(data) // 2] ^= 1
    (run / "last.pt").write_bytes(bytes(data))
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run / 'last.pt'}: damaged checkpoint" in err


def test_a_full_disk_is_one_line_and_keeps_the_last_good_checkpoint(image_folder, tmp_path, monkeypatch):
    import alexnet.fileio as fileio

    run = tmp_path / "run"
    trainer = Trainer(tiny(image_folder, run, epochs=2), progress=False)
    real, written = fileio._Hashing.write, []

    def write(self, b):  # the disk fills up part way through epoch 2's checkpoint
        if trainer.epoch >= 2 and len(written) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(b)) if trainer.epoch >= 2 else None
        return real(self, b)

    monkeypatch.setattr(fileio._Hashing, "write", write)
    with pytest.raises(RunFailure) as e:
        trainer.fit()
    assert (
        str(e.value)
        == f"{run / 'last.pt'}: could not be written (no space left on device); the previous last.pt is kept"
    )
    assert load_checkpoint(run)["epoch"] == 1  # epoch 1's, intact and verified
    assert sorted(p.name for p in run.iterdir() if p.name != "tb") == [
        "best.pt",
        "config.yaml",
        "last.pt",
        "metrics.csv",
        "stats.pt",
        "steps.csv",
    ]


def test_sigterm_during_start_up_exits_cleanly(image_folder, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real = setup.get_stats

    def stats_then_signal(*a, **k):  # the statistics pass is written, then the scheduler says stop
        out = real(*a, **k)
        os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(setup, "get_stats", stats_then_signal)
    args = [
        "train",
        "--model",
        "cifar_convnet",
        "--data",
        str(image_folder),
        "--resize",
        "36",
        "--crop",
        "32",
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--run-dir",
        str(run),
        "--quiet",
    ]
    assert main(args) == 128 + signal.SIGTERM
    assert (
        capsys.readouterr().err.splitlines()[-1]
        == "alexnet train: stopped by SIGTERM during start-up; nothing was trained"
    )
    assert not run.exists()  # nothing half-made, not even its folder: the same command runs again
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.setattr(setup, "get_stats", real)
    assert main(args + ["--limit-batches", "1"]) == 0


def test_nan_guard_checks_weights_and_names_a_checkpoint_that_exists(image_folder, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(tiny(image_folder, run, epochs=1, log_every=100), progress=False)
    real_step = loop.Trainer._step

    def poison(self, batch):  # no checkpoint yet: the loss of step 2 is NaN
        if self.step == 1:
            with torch.no_grad():
                self.model.classifier.fc4.weight[0, 0] = float("nan")
        return real_step(self, batch)

    monkeypatch.setattr(loop.Trainer, "_step", poison)
    with pytest.raises(NonFiniteLoss, match="non-finite at step 2 .* no checkpoint was written before it"):
        trainer.fit()  # noticed at the epoch's end (log_every=100), not saved
    assert not (run / "last.pt").exists()

    run = tmp_path / "run2"  # every loss finite, but the last update leaves a weight non-finite
    trainer = Trainer(tiny(image_folder, run, epochs=2, log_every=100), progress=False)

    def poison_after_update(self, batch):
        out = real_step(self, batch)
        if self.step == 5:  # step 6, the last of epoch 2, whose end would save it
            with torch.no_grad():
                self.model.classifier.fc4.weight[0, 0] = float("inf")
        return out

    monkeypatch.setattr(loop.Trainer, "_step", poison_after_update)
    with pytest.raises(
        NonFiniteLoss, match=f"weights became non-finite by step 6 .* {run / 'last.pt'} .step 3."
    ):
        trainer.fit()
    ck = load_checkpoint(run)
    assert ck["step"] == 3 and all(torch.isfinite(v).all() for v in ck["model"].values())


def test_no_host_sync_per_step(tmp_path, monkeypatch):
    """Counts every call that waits for the device on CUDA; with a logging interval longer than
    the run, a 16-step run makes no more of them than a 4-step one (training and validation)."""
    from alexnet.data.transforms import CropBox
    from conftest import write_image

    data = tmp_path / "ds"
    for split in ("train", "val"):
        for c in "ab":
            for i in range(16):
                write_image(data / split / c / f"{i}.png", (32, 32), seed=i + 50 * (c == "b"))
    # the crop's CPU branch (per-image slices from a .tolist()) never runs on a GPU: take the device branch
    apply = CropBox.apply
    monkeypatch.setattr(CropBox, "apply", lambda self, src, gather=None: apply(self, src, True))
    calls = collections.Counter()

    def counting(owner, name):
        real = getattr(owner, name)

        def f(*a, **k):
            calls[name] += 1
            return real(*a, **k)

        monkeypatch.setattr(owner, name, f)

    for name in ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"):
        counting(torch.Tensor, name)
    counting(torch.cuda, "synchronize")
    per_run = []
    for steps in (4, 16):
        cfg = build_config(
            None,
            None,
            model="cifar_convnet",
            data=str(data),
            resize=None,
            crop=32,
            batch_size=2,
            epochs=1,
            workers=0,
            run_dir=str(tmp_path / f"run{steps}"),
            limit_batches=steps,
            log_every=100,
            schedule="constant",
            seed=1,
        )
        trainer = Trainer(cfg, progress=False)
        calls.clear()
        trainer.fit()
        per_run.append(dict(calls))
    assert per_run[0] == per_run[1], per_run
    assert sum(per_run[0].values()) < 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checkpoint(tmp_path / "run16")["step"] == 16


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_devices_that_do_not_exist_are_one_line(image_folder, tmp_path, capsys):
    base = [
        "train",
        "--model",
        "alexnet",
        "--data",
        str(image_folder),
        "--run-dir",
        str(tmp_path / "run"),
        "--quiet",
    ]
    assert main(base + ["--towers-on", "cuda:0,cuda:1"]) == 2
    assert capsys.readouterr().err == (
        "alexnet train: error: --towers-on cuda:0: CUDA is not available on this "
        f"machine (torch {torch.__version__})\n"
    )
    assert main(base + ["--device", "tpu:x"]) == 2
    assert "--device tpu:x: not a device" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_summary_is_strict_json_when_no_epoch_finished(image_folder, tmp_path):
    import json

    run = tmp_path / "run"
    summary = Trainer(tiny(image_folder, run, max_steps=2), progress=False).fit()  # 3 batches an epoch
    assert summary["epochs"] == 0 and summary["steps"] == 2
    text = (run / "summary.json").read_text()
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    # the run's end validates, inside its first epoch
    assert (back["best_step"], back["best_epoch"]) == (2, 0.6667) and 0 <= back["best_val_top1_err"] <= 1
    assert back["last_epoch"]["epoch"] == 0.6667


def test_resume_keeps_the_class_list_when_a_folder_appears(image_folder, tmp_path):
    from alexnet.training import resume
    from conftest import write_image

    run = tmp_path / "run"
    Trainer(tiny(image_folder, run, epochs=1), progress=False).fit()
    for split in ("train", "val"):  # a new class sorted first would shift every label by one
        write_image(image_folder / split / "aardvark" / "0.png", (40, 40), seed=99)
    with pytest.raises(BadInput, match="aardvark"):
        resume(str(run), progress=False, epochs=2)
