"""`alexnet bench model` and the peer benchmark's set-up (numbers are printed, not asserted)."""

import importlib.util
import platform
import re
from pathlib import Path

import pytest
import torch

import alexnet
from alexnet.bench import BenchConfig, flops_per_image, kernel_peak, layer_probes
from alexnet.cli import main
from alexnet.runtime import tune_allocator


def test_flops_per_image():
    m = alexnet.create_model("alexnet")
    assert flops_per_image(m, "infer") == 2 * 724_406_816
    # the image needs no gradient: conv1's input-gradient GEMM (105,415,200 MACs) is not run
    assert flops_per_image(m, "train") == 2 * (3 * 724_406_816 - 105_415_200)


@pytest.mark.parametrize(
    "extra,precision",
    [
        ([], None),
        (["--mode", "infer", "--channels-last"], None),
        (["--amp", "bf16"], "bf16"),
        (["--precision", "fp32"], "fp32"),
        (["--compile", "--mode", "infer"], None),
    ],
)
def test_bench_model_prints_rates(capsys, extra, precision):
    assert (
        main(
            [
                "bench",
                "model",
                "--model",
                "cifar_convnet",
                "--batch-size",
                "4",
                "--steps",
                "2",
                "--warmup",
                "1",
                *extra,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    ips, pct = re.search(r"([\d.]+) img/s .* GFLOP/s = ([\d.e+-]+)% of peak", out[-1]).groups()
    assert float(ips) > 0 and 0 < float(pct) <= 100, out
    assert out[0].startswith("# CPU: ") and "flags:" in out[0]
    assert "peak" in out[1] and ("as requested" in out[1] if precision else "precision auto ->" in out[1])
    if precision:
        assert f" {precision} " in out[-1]


def test_probes_are_the_networks_layers():
    """The peak is measured with each conv/fc layer of the network at the step's batch size,
    dtype and layout: their FLOPs add up to the model's, and the best of them is the peak."""
    m = alexnet.create_model("alexnet")
    cfg = BenchConfig(batch_size=2, channels_last=True, precision="bf16")
    probes = layer_probes(m, cfg)
    assert [n for n, _, _ in probes] == [
        "features.conv1",
        "features.conv2",
        "features.conv3",
        "features.conv4",
        "features.conv5",
        "classifier.fc6",
        "classifier.fc7",
        "classifier.fc8",
    ]
    assert sum(f for _, _, f in probes) == cfg.batch_size * flops_per_image(m, "infer")
    out = probes[1][1]()  # conv2 alone: bf16, channels_last, batch 2, 27x27 -> 27x27 maps
    assert out.dtype == torch.bfloat16 and out.shape == (2, 256, 27, 27)
    assert out.is_contiguous(memory_format=torch.channels_last)
    small = alexnet.create_model("cifar_convnet")
    peak, which = kernel_peak(small, BenchConfig(batch_size=2), reps=0)
    assert peak > 0 and (which == "square GEMM" or which.endswith(" alone"))


def test_bench_precision_flags_must_agree(capsys):
    assert main(["bench", "model", "--amp", "bf16", "--precision", "fp32"]) == 2
    assert "disagree" in capsys.readouterr().err


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
