"""`alexnet bench model` and the peer benchmark's set-up (numbers are printed, not asserted)."""
import importlib.util
import platform
import re
from pathlib import Path

import pytest
import torch

import alexnet
from alexnet.bench import flops_per_image
from alexnet.cli import main
from alexnet.runtime import tune_allocator


def test_flops_per_image():
    m = alexnet.create_model("alexnet")
    assert flops_per_image(m, "infer") == 2 * 724_406_816
    # the image needs no gradient: conv1's input-gradient GEMM (105,415,200 MACs) is not run
    assert flops_per_image(m, "train") == 2 * (3 * 724_406_816 - 105_415_200)


@pytest.mark.parametrize("extra", [[], ["--mode", "infer", "--channels-last"], ["--amp", "bf16"],
                                   ["--compile", "--mode", "infer"]])
def test_bench_model_prints_rates(capsys, extra):
    assert main(["bench", "model", "--model", "cifar_convnet", "--batch-size", "4", "--steps", "2",
                 "--warmup", "1", *extra]) == 0
    out = capsys.readouterr().out
    line = out.strip().splitlines()[-1]
    ips, pct = re.search(r"([\d.]+) img/s .* ([\d.]+)% of GEMM peak", line).groups()
    assert float(ips) > 0 and float(pct) > 0
    assert "GEMM peak" in out.splitlines()[0]


def test_bench_rejects_bad_arguments(capsys):
    assert main(["bench", "model", "--model", "nope"]) == 2
    assert "valid names" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "model", "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    assert main(["bench", "model", "--steps", "0"]) == 2


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tune_allocator_takes_effect():
    assert tune_allocator() is True


def test_peers_compute_the_same_function():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "lrn_peers.py"
    spec = importlib.util.spec_from_file_location("lrn_peers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    models = mod.peers()  # asserts ours == torch-LRN peer (alpha scaled by n) before returning
    assert isinstance(models["torch-lrn"].features.norm1, torch.nn.LocalResponseNorm)
    assert isinstance(models["no-lrn"].features.norm2, torch.nn.Identity)
    assert models["torch-lrn"].features.norm1.alpha == pytest.approx(5e-4)
