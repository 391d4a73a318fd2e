"""Data parallel with torchrun + gloo on the real CIFAR-10 tar: the same numbers as one process."""
import csv
import subprocess
import sys

import pytest
import torch

from alexnet.training.checkpoint import load_checkpoint


def run(args, nproc=None, timeout=300):
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "alexnet", *args]
    else:
        cmd = [sys.executable, "-m", "alexnet", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_ddp_matches_one_process(data_root, tmp_path):
    tar = data_root / "cifar10-jpeg.tar"
    if not tar.exists():
        pytest.skip(f"{tar} is absent")
    common = ["train", "--model", "cifar_convnet", "--data", str(tar), "--resize", "0", "--crop", "32",
              "--no-flip", "--pca-std", "0", "--mean", "channel", "--batch-size", "32", "--epochs", "1",
              "--limit-batches", "4", "--workers", "0", "--lr", "0.05", "--update-rule", "torch",
              "--schedule", "constant", "--quiet", "--no-channels-last",
              "--precision", "fp32"]  # bf16 (auto's choice on some CPUs) rounds differently per batch split
    one, two = tmp_path / "one", tmp_path / "two"
    run(common + ["--run-dir", str(one)])
    r = run(common + ["--run-dir", str(two)], nproc=2)
    assert r.stdout.count("epoch 1:") == 1  # rank 0 alone reports
    a, b = load_checkpoint(one), load_checkpoint(two)
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-4, atol=1e-5)
    ra, rb = (list(csv.DictReader(open(d / "metrics.csv")))[0] for d in (one, two))
    for key in ("train_loss", "val_loss", "val_top1_err"):
        assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-4, abs=1e-5), key
    assert len(b["rng"]) == 2  # each rank's RNG state is kept for an exact resume


def test_ddp_resume_continues_the_same_run(data_root, tmp_path):
    tar = data_root / "cifar10-jpeg.tar"
    if not tar.exists():
        pytest.skip(f"{tar} is absent")
    common = ["train", "--model", "cifar_convnet", "--data", str(tar), "--resize", "0", "--crop", "32",
              "--mean", "channel", "--pca-std", "0", "--batch-size", "32", "--epochs", "1",
              "--limit-batches", "4", "--workers", "0", "--schedule", "constant", "--quiet"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run(common + ["--run-dir", str(whole)], nproc=2)
    run(common + ["--run-dir", str(parts), "--max-steps", "2"], nproc=2)
    assert load_checkpoint(parts)["step"] == 2
    run(["train", "--resume", str(parts), "--quiet"], nproc=2)
    a, b = load_checkpoint(whole), load_checkpoint(parts)
    assert b["step"] == 4
    for k in a["model"]:  # flips and crops draw from each rank's restored generator
        torch.testing.assert_close(b["model"][k], a["model"][k], rtol=0, atol=0)
