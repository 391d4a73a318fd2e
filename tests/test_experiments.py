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
                write_image(root / split / cls / f"{i}.png", (32, 32), seed=10 * c + i + (50 if split == "test" else 0))
    return root


def test_relu_vs_tanh_smoke_and_resume(cifar_like, tmp_path):
    out = tmp_path / "fig1"
    r = relu_vs_tanh(str(cifar_like), out, target=0.0, lrs=(0.01, 0.05), epochs=2, batch_size=4,
                     workers=0, progress=False)
    assert set(r["best"]) == {"relu", "tanh"} and len(r["all"]) == 4
    assert all(len(v["curve"]) == 2 for v in r["all"].values())
    from alexnet.training.checkpoint import load_checkpoint
    ck = load_checkpoint(out / "relu-lr0.01")
    assert ck["config"]["resize"] is None and ck["config"]["weight_decay"] == 0.0  # Fig. 1: native size, no regularisation
    assert ck["config"]["model_kw"] == {"activation": "relu", "lrn": False}
    assert (out / "fig1.png").exists() and json.loads((out / "summary.json").read_text())["best"]
    stamp = (out / "relu-lr0.01" / "metrics.csv").stat().st_mtime_ns
    again = relu_vs_tanh(str(cifar_like), out, target=0.0, lrs=(0.01, 0.05), epochs=2, batch_size=4,
                         workers=0, progress=False)
    assert again["best"] == r["best"]  # finished runs are read back, not retrained
    assert (out / "relu-lr0.01" / "metrics.csv").stat().st_mtime_ns == stamp


def test_target_error_stops_early(cifar_like, tmp_path):
    r = relu_vs_tanh(str(cifar_like), tmp_path / "t", target=1.0, lrs=(0.01,), epochs=5, batch_size=4,
                     workers=0, progress=False)
    assert r["best"]["relu"]["epochs"] == 1 and len(r["best"]["relu"]["curve"]) == 1
    assert r["epoch_ratio_tanh_over_relu"] == 1.0


def test_ablations_smoke(cifar_like, tmp_path, capsys):
    table = ablations(str(cifar_like), tmp_path / "abl", seeds=2, epochs=1, batch_size=4, workers=0,
                      progress=False)
    assert len(table) == 5 and all(len(t["errors"]) == 2 for t in table.values())
    assert "§3.3" in "".join(table) and table["no LRN (§3.3)"]["paper"]
    assert main(["experiment", "ablations", "--data", str(cifar_like), "--out", str(tmp_path / "abl"),
                 "--seeds", "2", "--epochs", "1", "--batch-size", "4", "--workers", "0"]) == 0
    assert "| no PCA colour noise (§4.1) |" in capsys.readouterr().out
