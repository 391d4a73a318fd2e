"""Training: config layering, the paper's update rule, schedules, runs, exact resume, signals."""

import csv
import json
import os
import signal

import pytest
import torch
import yaml

from alexnet.cli import main
from alexnet.training import NonFiniteLoss, Stop, Trainer, build_config, resume
from alexnet.training.checkpoint import load_checkpoint
from alexnet.training.config import PRESETS, TrainConfig
from alexnet.training.optim import PaperSGD, Schedule


def tiny(image_folder, run_dir, **kw):
    """cifar_convnet on the 3-class generated folder, 36x36 stored, 32 crops, 3 batches/epoch."""
    base = dict(
        model="cifar_convnet",
        data=str(image_folder),
        resize=36,
        crop=32,
        batch_size=4,
        epochs=2,
        lr=0.01,
        schedule="constant",
        workers=0,
        run_dir=str(run_dir),
        seed=3,
        mean="image",
        pca_std=0.1,
    )
    base.update(kw)
    return build_config(None, None, **base)


def test_config_layers(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 0.5\nbatch_size: 7\n")
    cfg = build_config("paper", str(f), batch_size=9, data="x")
    assert (cfg.model, cfg.lr, cfg.batch_size, cfg.update_rule) == ("alexnet", 0.5, 9, "paper")
    assert set(PRESETS) == {"paper", "caffe", "owt", "d2l", "cifar10-quick", "keras-bn", "cuda-convnet"}
    caffe = build_config("caffe", data="x")
    assert (caffe.batch_size, caffe.bias_lr_mult, caffe.bias_decay) == (256, 2.0, False)
    assert (caffe.max_steps, caffe.max_iters) == (450_000, None)  # max_iters: the old name of the total
    assert build_config(None, None, data="x", resize=None).resize is None  # given: native size
    assert build_config(None, None, flags={"data": "x", "resize": None}).resize == 256  # flag not given
    with pytest.raises(ValueError, match="unknown config key"):
        build_config(None, None, data="x", learning_rate=1)
    with pytest.raises(ValueError, match="schedule='cosine'"):
        build_config(None, None, data="x", schedule="cosine")
    with pytest.raises(ValueError, match="unknown preset"):
        build_config("imagenet", data="x")
    with pytest.raises(ValueError, match="no training data"):
        build_config(None)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        build_config(None, str(tmp_path / "bad.json"), data="x")


def test_paper_update_rule_keeps_lr_inside_momentum():
    """v <- 0.9 v - 0.0005 eps w - eps g ; w <- w + v, with eps changing between steps."""
    w0, g = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 0.25], dtype=torch.float64)
    p = torch.nn.Parameter(w0.clone())
    opt = PaperSGD([p], lr=0.1, momentum=0.9, weight_decay=0.0005)
    v, w = torch.zeros(2, dtype=torch.float64), w0.clone()
    for eps in (0.1, 0.01, 0.01):
        for group in opt.param_groups:
            group["lr"] = eps
        p.grad = g.clone()
        opt.step()
        v = 0.9 * v - 0.0005 * eps * w - eps * g
        w = w + v
        torch.testing.assert_close(p.detach(), w, rtol=1e-14, atol=1e-14)
    # torch.optim.SGD agrees at constant lr but not after a drop
    q = torch.nn.Parameter(w0.clone())
    sgd = torch.optim.SGD([q], lr=0.1, momentum=0.9, weight_decay=0.0005)
    for eps in (0.1, 0.01, 0.01):
        sgd.param_groups[0]["lr"] = eps
        q.grad = g.clone()
        sgd.step()
    assert not torch.allclose(q.detach(), w)


def test_schedules():
    def sched(**kw):
        cfg = TrainConfig(data="x", lr=1.0, **kw)
        p = torch.nn.Parameter(torch.zeros(1))
        return Schedule(torch.optim.SGD([dict(params=[p], lr_mult=2.0)], lr=1.0), cfg)

    s = sched(schedule="plateau", patience=2, max_drops=3)
    errors = [0.9, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7] + [0.7] * 10
    lrs = []
    for e, err in enumerate(errors):
        s.after_epoch(e, err)
        lrs.append(s.lr)
    assert lrs[:7] == [
        1.0,
        1.0,
        1.0,
        pytest.approx(0.1),
        pytest.approx(0.1),
        pytest.approx(0.1),
        pytest.approx(0.01),
    ]
    assert s.drops == 3 and lrs[-1] == pytest.approx(1e-3)  # "reduced three times"
    assert s.opt.param_groups[0]["lr"] == pytest.approx(2e-3)  # lr_mult applies
    s = sched(schedule="step", step_size=100, step_unit="iter")
    s.after_step(250)
    assert s.lr == pytest.approx(0.01)
    s = sched(schedule="step", step_size=30)
    s.after_epoch(29, None)
    assert s.lr == pytest.approx(0.1)


def test_run_writes_its_files(image_folder, tmp_path):
    run = tmp_path / "run"
    summary = Trainer(tiny(image_folder, run), progress=False).fit()
    assert summary["epochs"] == 2 and summary["steps"] == 6
    for name in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "summary.json", "stats.pt"):
        assert (run / name).exists(), name
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0 <= float(r["val_top1_err"]) <= 1 and float(r["train_loss"]) > 0 for r in rows)
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == "cifar_convnet"
    ck = load_checkpoint(run)
    assert ck["epoch"] == 2 and ck["card"]["classes"] == ["ant", "bee", "cat"]
    assert json.loads((run / "summary.json").read_text())["steps"] == 6


def final_weights(run):
    return load_checkpoint(run)["model"]


@pytest.mark.parametrize("stop_at", [2, 3])  # mid-epoch, and after the epoch's last step
def test_sigterm_then_resume_is_bit_identical(image_folder, tmp_path, monkeypatch, stop_at):
    ref = tmp_path / "ref"
    Trainer(tiny(image_folder, ref), progress=False).fit()
    run = tmp_path / "run"
    trainer = Trainer(tiny(image_folder, run), progress=False)
    real_step = Trainer._step

    def step_then_signal(self, batch):
        out = real_step(self, batch)
        if self.step + 1 == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)  # the real handler, as `kill` would
        return out

    monkeypatch.setattr(Trainer, "_step", step_then_signal)
    with pytest.raises(Stop):
        trainer.fit()
    ck = load_checkpoint(run)
    assert ck["step"] == stop_at  # a loadable last.pt at the step where the signal came
    monkeypatch.setattr(Trainer, "_step", real_step)
    resume(str(run), progress=False)
    a, b = final_weights(ref), final_weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the uninterrupted one"
    rows, ref_rows = (list(csv.DictReader(open(d / "metrics.csv"))) for d in (run, ref))
    assert len(rows) == 2
    for r, q in zip(rows, ref_rows):  # the interrupted epoch's row covers its batches before the stop too
        for key in ("train_loss", "train_top1_err", "val_loss", "skipped"):
            assert r[key] == q[key], key


def test_max_steps_is_the_total_and_resume_keeps_the_limits(image_folder, tmp_path, capsys):
    """--max-steps is the run's total (Lightning, HF Trainer); --steps-this-invocation is a slice."""
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
        "2",
        "--workers",
        "0",
        "--run-dir",
        str(run),
        "--quiet",
        "--schedule",
        "constant",
        "--max-steps",
        "5",
        "--steps-this-invocation",
        "2",
    ]
    assert main(argv) == 0
    assert load_checkpoint(run)["step"] == 2 and not (run / "summary.json").exists()
    assert f"paused at epoch 1 step 2; continue with: alexnet train --resume {run}" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # keeps max_steps=5 of the run
    assert load_checkpoint(run)["step"] == 5 and "done: 1 epochs, 5 steps" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["finished"] is True
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # finished: nothing more to do
    assert load_checkpoint(run)["step"] == 5
    assert main(["train", "--resume", str(run), "--quiet", "--max-steps", "100"]) == 0  # a limit changed
    ck = load_checkpoint(run)
    assert (ck["step"], ck["epoch"], ck["config"]["max_steps"]) == (6, 2, 100)  # then 2 epochs end it
    assert main(["train", "--resume", str(run), "--quiet", "--lr", "0.5"]) == 2  # the recipe is kept
    assert "cannot change lr" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--run-dir", str(tmp_path / "x")]) == 2
    assert "--run-dir cannot be given" in capsys.readouterr().err
    assert build_config(None, None, data="x", max_iters=7).max_steps == 7  # the deprecated name


def test_non_finite_loss_stops_and_keeps_last_good(image_folder, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(tiny(image_folder, run, checkpoint_every=1), progress=False)
    real_step = Trainer._step

    def explode(self, batch):
        if self.step == 2:
            with torch.no_grad():
                self.model.classifier.fc4.weight.fill_(float("inf"))
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "_step", explode)
    with pytest.raises(NonFiniteLoss, match="last good checkpoint"):
        trainer.fit()
    ck = load_checkpoint(run)
    assert ck["step"] == 2 and torch.isfinite(ck["model"]["classifier.fc4.weight"]).all()


def test_evaluate_cli(image_folder, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(tiny(image_folder, run, epochs=1), progress=False).fit()
    capsys.readouterr()
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--weights",
                str(run / "best.pt"),
                "--data",
                str(image_folder),
                "--crops",
                "10",
                "--ensemble",
                str(run / "last.pt"),
                "--workers",
                "0",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)
    assert r["images"] == 6 and 0 <= r["top1_err"] <= 1 and r["top5_err"] == 0.0  # 3 classes: top-5 is all
    rows = list(csv.reader(open(out / "confusion.csv")))
    assert rows[0][1:] == ["ant", "bee", "cat"] and sum(int(v) for r_ in rows[1:] for v in r_[1:]) == 6
    assert len(list(csv.DictReader(open(out / "per_class.csv")))) == 3
    assert main(["evaluate", "--weights", str(tmp_path / "nope.pt"), "--data", str(image_folder)]) == 2


def test_d2l_preset_on_fashion_mnist_idx(tmp_path):
    """The d2l preset end to end on small files in Fashion-MNIST's IDX format (1 channel, 224)."""
    import numpy as np

    from test_data_sources import write_idx

    rng = np.random.default_rng(0)
    data = tmp_path / "fm"
    data.mkdir()
    for prefix, n in (("train", 8), ("t10k", 4)):
        write_idx(data / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    cfg = build_config(
        "d2l",
        None,
        data=str(data),
        batch_size=4,
        epochs=1,
        workers=0,
        run_dir=str(tmp_path / "run"),
        limit_batches=1,
    )
    summary = Trainer(cfg, progress=False).fit()
    assert summary["steps"] == 1 and summary["last_epoch"]["epoch"] == 1
    ck = load_checkpoint(tmp_path / "run")
    assert ck["card"]["in_channels"] == 1 and ck["card"]["input_size"] == 224
    assert ck["model"]["features.conv1.weight"].shape == (96, 1, 11, 11)


def test_finetune_freezes_and_trains_the_right_layers(image_folder, tmp_path, capsys):
    from alexnet.interop.pretrained import load_pretrained

    src = tmp_path / "src"
    Trainer(tiny(image_folder, src, epochs=1), progress=False).fit()
    new = tmp_path / "new"  # another folder with other classes
    from conftest import write_image

    for c, cls in enumerate(["x", "y"]):
        for split, n in (("train", 4), ("val", 2)):
            for i in range(n):
                write_image(new / split / cls / f"{i}.png", (40, 40), seed=100 + 10 * c + i)
    run = tmp_path / "ft"
    assert (
        main(
            [
                "finetune",
                "--weights",
                str(src / "best.pt"),
                "--data",
                str(new),
                "--train-layers",
                "conv3",
                "--lr-mult",
                "fc4=10",
                "conv3=2",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--workers",
                "0",
                "--run-dir",
                str(run),
                "--quiet",
                "--resize",
                "36",
                "--crop",
                "32",
            ]
        )
        == 0
    )
    before, _ = load_pretrained(src / "best.pt")
    after, card = load_pretrained(run / "last.pt")
    assert card.classes == ["x", "y"] and after.classifier.fc4.out_features == 2
    b, a = before.state_dict(), after.state_dict()
    for k in ("features.conv1.weight", "features.conv1.bias", "features.conv2.weight"):
        assert torch.equal(a[k], b[k]), f"{k} should stay frozen"
    assert not torch.equal(a["features.conv3.weight"], b["features.conv3.weight"])
    assert (
        main(
            [
                "finetune",
                "--weights",
                str(src / "best.pt"),
                "--data",
                str(new),
                "--train-layers",
                "fc9",
                "--run-dir",
                str(tmp_path / "bad"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "unknown layer(s) ['fc9']" in capsys.readouterr().err


def test_cuda_graphs_is_refused_off_cuda(image_folder, tmp_path, capsys):
    """--cuda-graphs compiles the step for CUDA graph replay; on a CPU device it is one line, exit 2."""
    assert (
        main(
            [
                "train",
                "--model",
                "cifar_convnet",
                "--data",
                str(image_folder),
                "--cuda-graphs",
                "--run-dir",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["alexnet train: error: --cuda-graphs: CUDA graphs need a CUDA device, got --device cpu"]
    assert not (tmp_path / "run").exists()
    assert TrainConfig().cuda_graphs is False and TrainConfig().compile is False  # measured: benchmarks.md


def test_limited_validation_samples_every_class(image_folder, tmp_path):
    """--limit-batches cuts validation to its first batches; the files are sorted by class, so
    unshuffled they would be one class (a 100 % error that says nothing). Fixed order per run."""
    cfg = build_config(
        None,
        None,
        model="cifar_convnet",
        data=str(image_folder),
        resize=36,
        crop=32,
        batch_size=3,
        epochs=1,
        workers=0,
        limit_batches=1,
        run_dir=str(tmp_path / "run"),
    )
    trainer = Trainer(cfg, progress=False)
    first = [next(iter(trainer.val_loader)).labels.tolist() for _ in range(2)]
    assert first[0] == first[1] and len(set(first[0])) > 1, first
    full = build_config(
        None,
        None,
        model="cifar_convnet",
        data=str(image_folder),
        resize=36,
        crop=32,
        batch_size=3,
        epochs=1,
        workers=0,
        run_dir=str(tmp_path / "run2"),
    )
    assert [b.labels.tolist() for b in Trainer(full, progress=False).val_loader] == [[0, 0, 1], [1, 2, 2]]
