"""What a run records and shows: step rows, validations (every N steps and at the run's end),
TensorBoard curves, run-level progress, the resume line, setting sources, the summary."""

import csv
import json

import pytest
import torch
import yaml

from alexnet.cli import main
from alexnet.training import Trainer, resume
from alexnet.training.checkpoint import load_checkpoint
from alexnet.training.loop import Trainer as LoopTrainer
from test_training import tiny


def rows(path):
    return list(csv.DictReader(open(path)))


def recorded_steps(monkeypatch):
    """Each step's (loss, images), recorded as the loop computes them."""
    seen = []
    real = LoopTrainer._step

    def step(self, batch):
        loss, logits, y = real(self, batch)
        seen.append((loss.item(), len(y)))
        return loss, logits, y

    monkeypatch.setattr(LoopTrainer, "_step", step)
    return seen


def test_a_run_ended_by_max_steps_validates_and_logs_every_interval(image_folder, tmp_path, monkeypatch):
    """3 batches an epoch, --max-steps 4 ends the run inside epoch 2: its end validates (a
    metrics row, best.pt), and RUN/steps.csv has a row per --log-every interval and epoch end."""
    seen = recorded_steps(monkeypatch)
    run = tmp_path / "run"
    summary = Trainer(tiny(image_folder, run, epochs=3, max_steps=4, log_every=2), progress=False).fit()
    assert summary["finished"] and summary["steps"] == 4
    m = rows(run / "metrics.csv")
    assert [(r["epoch"], r["step"]) for r in m] == [("1", "3"), ("1.3333", "4")]
    # the row at step 4 covers the running epoch's one step so far: its loss is that step's
    assert float(m[1]["train_loss"]) == pytest.approx(seen[3][0], rel=1e-6)
    s = rows(run / "steps.csv")
    assert [int(r["step"]) for r in s] == [2, 3, 4]  # every 2 steps, and the epoch's end
    for r, (a, b) in zip(s, [(0, 2), (2, 3), (3, 4)]):  # each row: the mean loss of its interval
        want = sum(loss * n for loss, n in seen[a:b]) / sum(n for _, n in seen[a:b])
        assert float(r["loss"]) == pytest.approx(want, rel=1e-5) and float(r["img_per_s"]) > 0
        assert float(r["lr"]) == 0.01
    best = torch.load(run / "best.pt", weights_only=True)
    assert set(best) == {"model", "card", "config", "epoch", "step", "val_top1_err"}  # no optimiser
    assert "optimizer" in load_checkpoint(run)
    assert best["val_top1_err"] == min(float(r["val_top1_err"]) for r in m)
    out = json.loads((run / "summary.json").read_text())
    i = min(range(2), key=lambda j: (float(m[j]["val_top1_err"]), j))
    assert (out["best_step"], out["best_epoch"]) == (int(m[i]["step"]), float(m[i]["epoch"]))
    assert out["seconds_total"] >= out["seconds_this_run"] > 0


def test_validation_every_n_steps_and_separate_limits(image_folder, tmp_path, monkeypatch):
    import alexnet.training.loop as loop

    images = []
    real = loop.evaluate_loader

    def counting(*a, **kw):
        tally, skipped = real(*a, **kw)
        images.append(tally.n)
        return tally, skipped

    monkeypatch.setattr(loop, "evaluate_loader", counting)
    run = tmp_path / "run"
    Trainer(
        tiny(image_folder, run, epochs=2, val_every=2, limit_train_batches=2, limit_val_batches=1),
        progress=False,
    ).fit()
    m = rows(run / "metrics.csv")
    # 2 training batches an epoch: validations at steps 2 (the epoch's end, not twice) and 4
    assert [(r["epoch"], r["step"]) for r in m] == [("1", "2"), ("2", "4")]
    assert images == [4, 4]  # one validation batch of 4 of the 6 images, each time
    run2 = tmp_path / "run2"
    images.clear()
    Trainer(tiny(image_folder, run2, epochs=1, val_every=2, limit_val_batches=2), progress=False).fit()
    assert [(r["epoch"], r["step"]) for r in rows(run2 / "metrics.csv")] == [("0.6667", "2"), ("1", "3")]
    assert images == [6, 6]


def test_tensorboard_has_per_step_curves_under_grouped_tags(image_folder, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e '.[dev]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    Trainer(tiny(image_folder, run, epochs=2, log_every=1), progress=False).fit()
    ev = EventAccumulator(str(run / "tb"))
    ev.Reload()
    tags = set(ev.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/img_per_s", "val/top1_err", "val/loss"} <= tags
    loss = ev.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3, 4, 5, 6]  # the global step, one point per step
    want = [float(r["loss"]) for r in rows(run / "steps.csv")]
    assert [e.value for e in loss] == pytest.approx(want, rel=1e-5)
    assert [e.step for e in ev.Scalars("val/top1_err")] == [3, 6]
    assert [e.value for e in ev.Scalars("val/top1_err")] == pytest.approx(
        [float(r["val_top1_err"]) for r in rows(run / "metrics.csv")]
    )


def test_progress_is_the_runs_and_resume_says_where_it_resumes(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
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
        "3",
        "--workers",
        "0",
        "--run-dir",
        str(run),
        "--lr",
        "0.02",
        "--schedule",
        "constant",
        "--max-steps",
        "5",
        "--steps-this-invocation",
        "2",
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "epoch 1/3: step 2/2" in err  # this invocation ends at step 2
    assert main(["train", "--resume", str(run), "--max-steps", "7", "--log-every", "3"]) == 0
    out, err = capsys.readouterr()
    assert f"resuming {run} at step 2 of 7: epoch 1/3, 2 batches into it (from {run / 'last.pt'})" in out
    assert "epoch 1/3: step 3/7" in err and "epoch 3/3: step 7/7" in err  # the run's steps, not the epoch's
    assert "done: 2 epochs, 7 steps" in out
    sources = yaml.safe_load((run / "config.yaml").read_text())["resolved_from"]
    assert sources["lr"] == "--lr" and sources["model"] == "--model"  # where they first came from
    assert (
        sources["max_steps"] == "--max-steps (on resume)"
        and sources["log_every"] == "--log-every (on resume)"
    )
    assert "last.pt" not in json.dumps(sources)
    m = rows(run / "metrics.csv")
    assert [r["step"] for r in m] == ["3", "6", "7"]
    assert [int(r["step"]) for r in rows(run / "steps.csv")] == [2, 3, 6, 7]  # the resumed run kept step 2's


def test_a_resumed_run_drops_what_was_logged_after_its_checkpoint(image_folder, tmp_path):
    """Killed after logging step 5 but before saving it: the resumed run's logs read as one
    uninterrupted run's (the same rows, the same losses: resume is bit-identical)."""
    import shutil

    full = tmp_path / "full"
    Trainer(tiny(image_folder, full, epochs=2, log_every=1), progress=False).fit()
    run = tmp_path / "run"
    Trainer(tiny(image_folder, run, epochs=2, log_every=1), progress=False).fit(steps=4)
    shutil.copy(run / "last.pt", tmp_path / "step4.pt")
    resume(str(run), progress=False, steps=1)
    assert rows(run / "steps.csv")[-1]["step"] == "5"
    shutil.copy(tmp_path / "step4.pt", run / "last.pt")  # as if killed before step 5's checkpoint
    resume(str(run), progress=False)
    a, b = rows(run / "steps.csv"), rows(full / "steps.csv")
    assert [r["step"] for r in a] == [r["step"] for r in b] == ["1", "2", "3", "4", "5", "6"]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["step"] for r in rows(run / "metrics.csv")] == ["3", "6"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["seconds_total"] > summary["seconds_this_run"] > 0
