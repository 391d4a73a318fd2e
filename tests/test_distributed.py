"""Data parallel with torchrun + gloo: the same numbers as one process, shared statistics, stops
agreed by every rank, exact resume, and clear errors for what cannot work."""

import csv
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from alexnet.cli import main
from alexnet.data import Decoding, compute_stats, load_stats, open_dataset
from alexnet.training.checkpoint import load_checkpoint
from conftest import write_image


def launch(args, nproc=None):
    if nproc:
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "alexnet",
            *args,
        ]
    return [sys.executable, "-m", "alexnet", *args]


def run(args, nproc=None, timeout=300):
    r = subprocess.run(launch(args, nproc), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_ddp_matches_one_process(data_root, tmp_path):
    tar = data_root / "cifar10-jpeg.tar"
    if not tar.exists():
        pytest.skip(f"{tar} is absent")
    common = [
        "train",
        "--model",
        "cifar_convnet",
        "--data",
        str(tar),
        "--resize",
        "0",
        "--crop",
        "32",
        "--no-flip",
        "--pca-std",
        "0",
        "--mean",
        "channel",
        "--batch-size",
        "32",
        "--epochs",
        "1",
        "--limit-batches",
        "4",
        "--workers",
        "0",
        "--lr",
        "0.05",
        "--update-rule",
        "torch",
        "--schedule",
        "constant",
        "--quiet",
        "--no-channels-last",
        "--precision",
        "fp32",
    ]  # bf16 (auto's choice on some CPUs) rounds differently per batch split
    one, two = tmp_path / "one", tmp_path / "two"
    run(common + ["--run-dir", str(one)])
    r = run(common + ["--run-dir", str(two)], nproc=2)
    assert r.stdout.count("epoch 1:") == 1 and r.stdout.count("done:") == 1  # rank 0 alone reports
    a, b = load_checkpoint(one), load_checkpoint(two)
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-4, atol=1e-5)
    ra, rb = (list(csv.DictReader(open(d / "metrics.csv")))[0] for d in (one, two))
    for key in ("train_loss", "val_loss", "val_top1_err"):
        assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-4, abs=1e-5), key
    assert len(b["rng"]) == 2 and b["world"] == 2  # each rank's RNG state is kept for an exact resume


@pytest.fixture
def folder(tmp_path):
    """3 classes x 8 training images (36x36 stored): 6 steps per epoch at a global batch of 4."""
    root = tmp_path / "ds"
    for split, n in (("train", 8), ("val", 2)):
        for c, cls in enumerate(["ant", "bee", "cat"]):
            for i in range(n):
                write_image(root / split / cls / f"{i}.png", (40 + 4 * (i % 3), 40), seed=30 * c + i)
    return root


def worker_pid(parent: int, rank: int) -> int | None:
    """The torchrun worker process with this RANK."""
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if ppid == parent and f"RANK={rank}".encode() in env:
            return int(d)
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
def test_sigterm_to_one_rank_stops_all_and_resume_is_bit_identical(folder, tmp_path, capsys):
    common = [
        "train",
        "--model",
        "cifar_convnet",
        "--data",
        str(folder),
        "--resize",
        "36",
        "--crop",
        "32",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--schedule",
        "constant",
        "--quiet",
        "--lr",
        "0.001",
        "--log-every",
        "2",
    ]
    stopped, ref, end = tmp_path / "stopped", tmp_path / "ref", 60
    # the uninterrupted reference runs meanwhile, to the same total of 60 steps (10 epochs)
    r = subprocess.Popen(
        launch(common + ["--epochs", "200", "--max-steps", str(end), "--run-dir", str(ref)], 2),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    p = subprocess.Popen(
        launch(common + ["--epochs", "200", "--run-dir", str(stopped)], 2),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not (stopped / "last.pt").exists():  # past start-up: epoch 1 is saved
            assert p.poll() is None, p.stderr.read()[-3000:]
            time.sleep(0.02)
        os.kill(worker_pid(p.pid, 1), signal.SIGTERM)  # one worker only, as a scheduler may do
        out, err = p.communicate(timeout=120)  # before: a hang until the 30-minute collective timeout
        assert r.wait(timeout=300) == 0, r.stderr.read()[-3000:]
    finally:
        p.kill()
        r.kill()
    # no traceback of ours, and no rank dying of anything but the signal (SIGABRT at exit was seen)
    assert p.returncode != 0 and "143" in err and "alexnet/training" not in err and "SIGABRT" not in err, err[
        -3000:
    ]
    assert f"continue with: torchrun --nproc-per-node 2 -m alexnet train --resume {stopped}" in out, out
    ck = load_checkpoint(stopped)
    stop, world = ck["step"], ck["world"]
    assert world == 2 and 6 <= stop < end

    # the statistics were computed by both ranks, each reading half: the same as one process
    stats = load_stats(stopped / "stats.pt")
    alone = compute_stats(open_dataset(str(folder), "train", Decoding(36, 36)), workers=0, progress=False)
    torch.testing.assert_close(stats["mean_image"], alone["mean_image"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(stats["eigval"], alone["eigval"], rtol=1e-5, atol=1e-8)
    assert stats["n_images"] == alone["n_images"] == 24

    # one process cannot continue a two-process run exactly: refused, saying why
    assert main(["train", "--resume", str(stopped), "--quiet"]) == 2
    assert "written by 2 process(es)" in capsys.readouterr().err

    run(["train", "--resume", str(stopped), "--max-steps", str(end)], nproc=2)
    a, b = load_checkpoint(ref), load_checkpoint(stopped)
    assert a["step"] == b["step"] == end
    for k in a["model"]:  # flips, crops and dropout draw from each rank's restored generators
        assert torch.equal(a["model"][k], b["model"][k]), k
    rows_a, rows_b = (list(csv.DictReader(open(d / "metrics.csv"))) for d in (ref, stopped))
    assert len(rows_a) == len(rows_b) == end // 6
    for ra, rb in zip(rows_a, rows_b):  # the interrupted epoch's row covers all of its batches
        for key in ("train_loss", "train_top1_err", "val_loss", "val_top1_err"):
            assert ra[key] == rb[key], (ra["epoch"], key)


def test_a_run_folder_not_shared_by_every_node_is_a_clear_error(folder, tmp_path):
    """Two "nodes" of one process each, whose run folders differ (as on two machines without a
    shared file system): both ranks stop at start-up with one line saying what is needed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = dict(
            os.environ,
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_RANK="0",
            LOCAL_WORLD_SIZE="1",
            OMP_NUM_THREADS="1",
        )
        args = [
            "train",
            "--model",
            "cifar_convnet",
            "--data",
            str(folder),
            "--resize",
            "36",
            "--crop",
            "32",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--quiet",
            "--run-dir",
            str(tmp_path / f"node{rank}"),
        ]
        procs.append(
            subprocess.Popen(launch(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 1, err
        last = err.strip().splitlines()[-1]  # rank 0 first says what it resolved, then the one error line
        assert err.count("error:") == 1 and "file system shared by all of them" in last, err
    assert not (tmp_path / "node0" / "stats.pt").exists()  # stopped before any work
