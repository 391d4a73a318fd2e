"""`--precision auto`: bf16 where the device multiplies it natively, fp32 elsewhere, with a reason."""

import pytest
import torch

from alexnet import precision
from alexnet.errors import BadInput
from alexnet.training.config import TrainConfig


def test_cpu_choice_agrees_with_the_kernels_flags():
    """Independent check: Linux's own list of CPU flags says whether bf16 is native here."""
    flags = precision.cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags on this system")
    native = bool({"avx512_bf16", "amx_bf16"} & flags)
    choice, reason = precision.auto_precision("cpu")
    assert choice == ("bf16" if native else "fp32")
    assert ("AVX512_BF16" in reason or "AMX" in reason) and len(reason.splitlines()) == 1


def test_cpu_flags_parses_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx512f avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu sse avx512f avx512_bf16\n"
    )
    assert precision.cpu_flags(str(info)) == {"fpu", "sse", "avx512f", "avx512_bf16"}
    assert precision.cpu_flags(str(tmp_path / "absent")) == set()


@pytest.mark.parametrize(
    "amx,avx512_bf16,want,word",
    [(False, False, "fp32", "emulated"), (False, True, "bf16", "AVX512_BF16"), (True, False, "bf16", "AMX")],
)
def test_cpu_without_and_with_native_bf16(monkeypatch, amx, avx512_bf16, want, word):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    choice, reason = precision.auto_precision("cpu")
    assert choice == want and word in reason


@pytest.mark.parametrize("capability,bf16,want", [((9, 0), True, "bf16"), ((7, 0), False, "fp32")])
def test_cuda_choice_follows_native_bf16(monkeypatch, capability, bf16, want):
    def is_bf16_supported(including_emulation=True):
        return bf16 or including_emulation  # torch emulates bf16 on any GPU: not a speed-up

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Some GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    choice, reason = precision.auto_precision("cuda:0")
    assert choice == want
    assert f"sm_{capability[0]}{capability[1]}" in reason and "Some GPU" in reason


def test_resolve_precision():
    assert precision.resolve_precision("fp16", "cpu") == ("fp16", "as requested")
    assert precision.resolve_precision("auto", "cpu")[0] in ("bf16", "fp32")
    assert precision.resolve_precision("auto", "mps")[0] == "fp32"
    with pytest.raises(BadInput, match="--precision must be auto or one of fp32, bf16, fp16, got 'fp8'"):
        precision.resolve_precision("fp8", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BadInput, match="CUDA is not available"):
            precision.auto_precision("cuda")


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
    assert (
        main(
            [
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
                "--limit-batches",
                "1",
                "--workers",
                "0",
                "--precision",
                "bf16",
                "--run-dir",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "precision bf16: as requested" in capsys.readouterr().out
    assert len(seen) == 1 and isinstance(seen[0], torch.autocast) and seen[0].fast_dtype == torch.bfloat16
