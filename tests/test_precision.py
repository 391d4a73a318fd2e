"""--precision auto: bf16 autocast where the CPU/GPU has native bf16, fp32 elsewhere."""
import pytest
import torch

from alexnet import precision as P
from alexnet.training.config import TrainConfig


@pytest.mark.parametrize("flags,want", [({"avx2", "avx512f", "avx512_bf16"}, "bf16"), ({"avx2", "amx_bf16"}, "bf16"),
                                        ({"avx2", "fma", "avx512f"}, "fp32"), (set(), "fp32")])
def test_auto_follows_the_cpu_flags(monkeypatch, flags, want):
    monkeypatch.setattr(P, "cpu_flags", lambda: flags)
    got, why = P.resolve_precision("auto", "cpu")
    assert got == want and why.startswith(f"precision auto -> {want}")
    for asked in ("fp32", "bf16", "fp16"):  # an explicit choice is never overridden
        assert P.resolve_precision(asked, "cpu") == (asked, f"precision {asked} (as asked)")


def test_auto_on_this_cpu():
    want = "bf16" if {"avx512_bf16", "amx_bf16"} & P.cpu_flags() else "fp32"
    assert P.resolve_precision("auto", "cpu")[0] == want
    assert "flags:" in P.describe_cpu()


def test_cuda_without_bf16_and_bad_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert P.resolve_precision("auto", "cuda")[0] == "fp32"
    with pytest.raises(ValueError, match="expected one of"):
        P.resolve_precision("fp8", "cpu")
    assert TrainConfig().precision == "auto"


def test_config_accepts_auto_and_rejects_others():
    TrainConfig(data="x", precision="auto").validate()
    with pytest.raises(ValueError, match="precision='fp8'"):
        TrainConfig(data="x", precision="fp8").validate()


def test_train_says_its_precision_and_validates_in_it(image_folder, tmp_path, monkeypatch, capsys):
    from alexnet.cli import main
    from alexnet.training import loop

    seen = []
    real = loop.evaluate_loader
    monkeypatch.setattr(loop, "evaluate_loader", lambda *a, **k: seen.append(a[8]) or real(*a, **k))
    assert main(["train", "--model", "cifar_convnet", "--data", str(image_folder), "--resize", "36",
                 "--crop", "32", "--batch-size", "4", "--epochs", "1", "--limit-batches", "1", "--workers", "0",
                 "--precision", "bf16", "--run-dir", str(tmp_path / "run"), "--quiet"]) == 0
    assert "precision bf16 (as asked)" in capsys.readouterr().out
    assert len(seen) == 1 and isinstance(seen[0], torch.autocast) and seen[0].fast_dtype == torch.bfloat16
