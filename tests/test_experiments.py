"""Smoke versions of the paper-claim experiments (the real runs are in docs/experiments.md)."""

import json

import pytest

from alexnet.analysis.experiments import ablations, relu_vs_tanh
from alexnet.cli import main
from conftest import write_image


@pytest.fixture
def cifar_like(tmp_path):
    root = tmp_path / "c"
    for split, n in (("train", 6), ("test", 3)):
        for c, cls in enumerate(["a", "b"]):
            for i in range(n):
                write_image(
                    root / split / cls / f"{i}.png",
                    (32, 32),
                    seed=10 * c + i + (50 if split == "test" else 0),
                )
    return root


def test_relu_vs_tanh_smoke_and_resume(cifar_like, tmp_path):
    out = tmp_path / "fig1"
    r = relu_vs_tanh(
        str(cifar_like), out, target=0.0, lrs=(0.01, 0.05), epochs=2, batch_size=4, workers=0, progress=False
    )
    assert set(r["best"]) == {"relu", "tanh"} and len(r["all"]) == 4
    assert all(len(v["curve"]) == 2 for v in r["all"].values())
    from alexnet.training.checkpoint import load_checkpoint

    ck = load_checkpoint(out / "relu-lr0.01")
    assert (
        ck["config"]["resize"] is None and ck["config"]["weight_decay"] == 0.0
    )  # Fig. 1: native size, no regularisation
    assert ck["config"]["model_kw"] == {"activation": "relu", "lrn": False}
    assert (out / "fig1.png").exists() and json.loads((out / "summary.json").read_text())["best"]
    stamp = (out / "relu-lr0.01" / "metrics.csv").stat().st_mtime_ns
    again = relu_vs_tanh(
        str(cifar_like), out, target=0.0, lrs=(0.01, 0.05), epochs=2, batch_size=4, workers=0, progress=False
    )
    assert again["best"] == r["best"]  # finished runs are read back, not retrained
    assert (out / "relu-lr0.01" / "metrics.csv").stat().st_mtime_ns == stamp


def test_target_error_stops_early(cifar_like, tmp_path):
    r = relu_vs_tanh(
        str(cifar_like),
        tmp_path / "t",
        target=1.0,
        lrs=(0.01,),
        epochs=5,
        batch_size=4,
        workers=0,
        progress=False,
    )
    assert r["best"]["relu"]["epochs"] == 1 and len(r["best"]["relu"]["curve"]) == 1
    assert r["epoch_ratio_tanh_over_relu"] == 1.0


def test_ablations_smoke(cifar_like, tmp_path, capsys):
    table = ablations(
        str(cifar_like), tmp_path / "abl", seeds=2, epochs=1, batch_size=4, workers=0, progress=False
    )
    assert len(table) == 5 and all(len(t["errors"]) == 2 for t in table.values())
    assert "§3.3" in "".join(table) and table["no LRN (§3.3)"]["paper"]
    assert (
        main(
            [
                "experiment",
                "ablations",
                "--data",
                str(cifar_like),
                "--out",
                str(tmp_path / "abl"),
                "--seeds",
                "2",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert "| no PCA colour noise (§4.1) |" in capsys.readouterr().out


def test_cuda_convnet_experiments_smoke(cifar_like, tmp_path, capsys):
    """§3.3's own net: Fig. 1 on the 13 % net, its ablations and the table, one short epoch each."""
    from alexnet.analysis.experiments import cuda_convnet_table
    from alexnet.training.checkpoint import load_checkpoint

    r = relu_vs_tanh(
        str(cifar_like),
        tmp_path / "f1",
        target=0.0,
        epochs=1,
        batch_size=4,
        workers=0,
        progress=False,
        net="cuda-convnet",
    )
    assert r["net"] == "cuda-convnet" and sorted(r["all"]) == [
        "relu-lr0.001",
        "relu-lr0.003",
        "tanh-lr0.001",
        "tanh-lr0.003",
    ]
    c = load_checkpoint(tmp_path / "f1" / "tanh-lr0.003")["config"]
    # the 13 % net, cuda-convnet's update, whole images brought to 24x24 (no crops), no regularisation
    assert (c["model"], c["model_kw"], c["resize"], c["crop"]) == (
        "cifar_local_13pct",
        {"activation": "tanh"},
        24,
        24,
    )
    assert (c["update_rule"], c["weight_decay"], c["flip"], c["pixel_scale"]) == ("paper", 0.0, False, 255.0)

    table = ablations(
        str(cifar_like),
        tmp_path / "abl",
        seeds=1,
        epochs=1,
        batch_size=4,
        workers=0,
        progress=False,
        net="cuda-convnet",
    )
    assert list(table)[1] == "no rnorm (§3.3: the 13 % net)" and len(table) == 5
    c = load_checkpoint(tmp_path / "abl" / "with-PCA-colour-noise-seed0")["config"]
    assert (c["model"], c["pca_std"], c["lr"], c["decay_mult"]) == (
        "cifar_local_11pct",
        0.1,
        0.001,
        {"conv1": 0.0, "conv2": 0.0},
    )
    assert load_checkpoint(tmp_path / "abl" / "no-rnorm-seed0")["config"]["model"] == "cifar_local_13pct"

    assert (
        main(
            [
                "experiment",
                "table",
                "--data",
                str(cifar_like),
                "--out",
                str(tmp_path / "t"),
                "--epochs",
                "1",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| cifar_local_13pct seed 0 (paper: 13 % (no normalisation)) |" in printed
    t = cuda_convnet_table(str(cifar_like), tmp_path / "t", epochs=1, workers=0, progress=False)  # read back
    assert t["cifar_local_11pct"]["runs"][0]["epochs"] == 1
    assert (
        0 <= t["cifar_local_11pct"]["mean"] <= 1
        and (tmp_path / "t" / "cifar_local_11pct-seed0" / "multiview.json").exists()
    )
    assert (tmp_path / "t" / "table.png").exists()
