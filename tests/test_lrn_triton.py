"""The Triton LRN (nn/lrn_triton.py) against the float64 formula and the float64 autograd of the
reference. Without a GPU the kernels run in Triton's interpreter on CPU tensors (TRITON_INTERPRET=1,
which triton reads when the kernels are decorated, so it is set before the module is imported);
with one, the same tests run the compiled kernels on CUDA. Sizes stay small: the interpreter
runs each program in numpy."""

import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from alexnet.nn import lrn as lrn_mod  # noqa: E402
from alexnet.nn import lrn_triton  # noqa: E402
from alexnet.nn.lrn import lrn_reference  # noqa: E402
from alexnet.nn.lrn_triton import local_response_norm_triton  # noqa: E402
from test_lrn import formula  # noqa: E402
from test_lrn_fast import conv1_like  # noqa: E402

if DEVICE == "cpu" and not lrn_triton.INTERPRETED:
    pytest.skip("lrn_triton was imported before TRITON_INTERPRET=1 was set", allow_module_level=True)


def run(x, size, alpha, beta, k, convention, g=None):
    """Triton output and input gradient for x (on DEVICE), and the float64 reference's."""
    x64 = x.double().requires_grad_()
    want = lrn_reference(x64, size, alpha, beta, k, convention)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) if g is None else g
    (want_grad,) = torch.autograd.grad(want, x64, g.double())
    xd = x.to(DEVICE).requires_grad_()
    y = local_response_norm_triton(xd, size, alpha, beta, k, convention)
    (grad,) = torch.autograd.grad(y, xd, g.to(DEVICE, x.dtype))
    assert y.dtype == grad.dtype == x.dtype and y.shape == grad.shape == x.shape
    fmt = lrn_triton._format(xd)  # channels_last stays channels_last, anything else NCHW
    assert y.is_contiguous(memory_format=fmt) and grad.is_contiguous(memory_format=fmt)
    return y.cpu().double(), grad.cpu().double(), want.detach(), want_grad


CASES = [  # (C, n, alpha, beta, k)
    (7, 5, 0.3, 0.75, 2.0),  # large alpha so the window matters; edge channels on both sides
    (3, 5, 0.5, 0.75, 1.0),  # fewer channels than the window
    (10, 3, 0.2, 0.5, 1.5),
    (4, 1, 0.5, 0.75, 2.0),  # n=1: each channel normalised by itself alone
    (96, 5, 1e-4, 0.75, 2.0),  # the paper's conv1 layer
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("convention", ["paper", "caffe"])
@pytest.mark.parametrize("C,n,alpha,beta,k", CASES)
def test_float32_matches_float64_reference(C, n, alpha, beta, k, convention, channels_last):
    x = conv1_like((2, C, 3, 5), seed=C + n) / (1 if alpha < 1e-3 else 40)  # post-ReLU conv1 scale
    x[:, ::2] -= x[:, ::2].mean()  # and some negative values
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    y, grad, want, want_grad = run(x, n, alpha, beta, k, convention)
    torch.testing.assert_close(want, formula(x, n, alpha, beta, k, convention), rtol=1e-12, atol=0)
    assert ((y - want).abs() <= 1e-5 * want.abs() + 1e-30).all()  # relative error <= 1e-5
    torch.testing.assert_close(grad, want_grad, rtol=1e-5, atol=1e-5 * want_grad.abs().max().item())


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype,ulp", [(torch.bfloat16, 2.0**-7), (torch.float16, 2.0**-10)])
def test_half_precision_rounds_once(dtype, ulp, channels_last):
    """Loads and stores in bf16/fp16, arithmetic in fp32: the output is the exact value of the
    (rounded) input rounded once, so within one unit in the last place (8 and 11 significant
    bits). One ulp, not half: Triton's interpreter truncates fp32 -> bf16 where GPUs round."""
    x = (torch.randn(2, 12, 4, 3) * 3).to(dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    g = torch.randn(x.shape).to(dtype)
    y, grad, want, want_grad = run(x, 5, 0.3, 0.75, 2.0, "caffe", g)
    assert ((y - want).abs() <= ulp * want.abs()).all()
    # the gradient sums n terms in fp32 and is rounded once: an ulp of the largest term, at most
    torch.testing.assert_close(grad, want_grad, rtol=ulp, atol=ulp * want_grad.abs().max().item())


@pytest.mark.parametrize("shape,size", [((5, 9), 3), ((2, 8, 6), 7), ((1, 5, 1, 1), 5)])
def test_other_ranks(shape, size):
    x = torch.randn(shape)
    y, grad, want, want_grad = run(x, size, 0.4, 0.75, 2.0, "paper")
    torch.testing.assert_close(y, formula(x, size, 0.4, 0.75, 2.0, "paper"), rtol=1e-5, atol=0)
    torch.testing.assert_close(grad, want_grad, rtol=1e-5, atol=1e-5 * want_grad.abs().max().item())


@pytest.mark.parametrize(
    "c,p,channels_last,tile,want",
    [
        (
            96,
            55 * 55,
            True,
            512,
            (32, 16),
        ),  # conv1 NHWC: 3 x 32 channels (128 idles 1/4, 64 x 2 too), 512 / 32 deep
        (256, 13 * 13, False, 1024, (16, 64)),  # CaffeNet's 13 x 13 rows: 3 x 64 = 192 idles 23 <= 192 / 8
        (256, 27 * 27, False, 1024, (4, 256)),  # 729 in 3 x 256 = 768 idles 39 <= 768 / 8: the widest
        (3, 10, True, 1024, (4, 16)),  # fewer channels than the narrowest block: rounded up
        (4096, 1, False, 512, (256, 1)),  # (N, C) features: channels contiguous
        (33, 1, False, 512, (64, 1)),  # no width idles <= 1/8: 64 and 2 x 32 both idle 31, the wider
    ],
)
def test_blocks_mask_few_lanes(c, p, channels_last, tile, want):
    block_c, block_p = lrn_triton.blocks(c, p, channels_last, tile)
    assert (block_c, block_p) == want and block_c * block_p <= tile


def test_beta_three_quarters_takes_the_rsqrt_path(monkeypatch):
    """beta = 0.75 exactly (the paper's, Caffe's) compiles the rsqrt form, any other beta the
    log2/exp2 one; both forms give the float64 formula at 0.75 (the general one forced here)."""
    x = conv1_like((2, 9, 3, 4), seed=4) / 40
    for beta, fast in ((0.75, True), (0.5, False), (0.7501, False)):
        kwargs = lrn_triton.launch_args(lrn_triton._lrn_bwd_kernel, 512, [x, x, x], 5, 0.06, beta, 2.0)[2]
        assert kwargs["BETA_3_4"] is fast
    results = [run(x, 5, 0.3, 0.75, 2.0, "paper")]
    real, forced = lrn_triton.launch_args, []

    def general(*a):
        grid, args, kwargs = real(*a)
        forced.append(kwargs["BETA_3_4"])
        return grid, args, {**kwargs, "BETA_3_4": False}

    monkeypatch.setattr(lrn_triton, "launch_args", general)
    results.append(run(x, 5, 0.3, 0.75, 2.0, "paper"))
    assert forced == [True, True]  # forward and backward, each taken off the fast path
    for y, grad, want, want_grad in results:
        assert ((y - want).abs() <= 1e-5 * want.abs() + 1e-30).all()
        torch.testing.assert_close(grad, want_grad, rtol=1e-5, atol=1e-5 * want_grad.abs().max().item())


def test_non_contiguous_input_and_empty_batch():
    x = torch.randn(2, 6, 4, 6)[:, :, :, ::2]  # strided: computed on a contiguous copy
    y, grad, want, want_grad = run(x, 5, 0.4, 0.75, 2.0, "paper")
    torch.testing.assert_close(y, want, rtol=1e-5, atol=0)
    assert local_response_norm_triton(torch.empty(0, 6, 3, 3, device=DEVICE)).shape == (0, 6, 3, 3)


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="float64"):
        local_response_norm_triton(torch.zeros(1, 3, 2, 2, dtype=torch.float64, device=DEVICE))
    with pytest.raises(ValueError, match="odd"):
        local_response_norm_triton(torch.zeros(1, 3, 2, 2, device=DEVICE), size=4)


def test_custom_op_traces_under_torch_compile():
    """One op that torch.compile keeps (a triton_op on GPU; an opaque custom op when interpreted)."""
    x = torch.randn(2, 8, 3, 3, device=DEVICE).to(memory_format=torch.channels_last).requires_grad_()
    f = torch.compile(lambda t: local_response_norm_triton(t, 5, 0.3), backend="aot_eager", fullgraph=True)
    y = f(x)
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    x64 = x.detach().cpu().double().requires_grad_()
    want = lrn_reference(x64, 5, 0.3)
    (want_grad,) = torch.autograd.grad(want, x64, torch.ones_like(want))
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y.cpu().double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.cpu().double(), want_grad, rtol=1e-5, atol=1e-5)
    torch.library.opcheck(torch.ops.alexnet.lrn_triton.default, (x.detach(), 5, 0.3, 0.75, 2.0))


def test_dispatch_takes_triton_on_cuda_only(monkeypatch):
    def t(device, dtype):
        return SimpleNamespace(device=torch.device(device), dtype=dtype)

    assert lrn_mod.triton_lrn() is lrn_triton
    assert lrn_mod._triton_path(t("cuda", torch.bfloat16)) and lrn_mod._triton_path(t("cuda", torch.float32))
    assert not lrn_mod._triton_path(t("cuda", torch.float64))  # torch-ops form keeps float64 exact
    assert not lrn_mod._triton_path(t("cpu", torch.float32))  # the C kernel's
    monkeypatch.setattr(lrn_mod, "_triton_module", None)
    monkeypatch.setenv("ALEXNET_NO_TRITON", "1")
    assert lrn_mod.triton_lrn() is None and not lrn_mod._triton_path(t("cuda", torch.float32))


@pytest.mark.skipif(DEVICE != "cuda", reason="needs a GPU")
def test_module_on_cuda_runs_triton_and_trains(monkeypatch):
    from alexnet import create_model

    calls = []
    real = lrn_triton.local_response_norm_triton
    monkeypatch.setattr(lrn_triton, "local_response_norm_triton", lambda *a: calls.append(1) or real(*a))
    model = create_model("alexnet").cuda().to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 227, 227, device="cuda").to(memory_format=torch.channels_last)
    with torch.autocast("cuda", torch.bfloat16):
        model(x).float().sum().backward()
    assert len(calls) == 2 and model.features[0].weight.grad.isfinite().all()


def test_every_launched_configuration_compiles_for_a100_and_h100_without_spills():
    """No GPU needed to compile: tests/triton_targets.py runs the networks with an LRN on the meta
    device (each dtype, both layouts, batch 1 to 1024) with the wrapper's launches recorded, adds
    the paper's update for every parameter, and compiles each distinct specialisation through
    Triton's compiler and ptxas for sm_80 (A100) and sm_90 (H100). A spill would cost
    local-memory traffic per tile; a compile error would end the first GPU run."""
    pytest.importorskip("triton.backends.nvidia.compiler", reason="triton without its CUDA backend")
    script = Path(__file__).with_name("triton_targets.py")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    if run.returncode and "ptxas" in run.stderr and "No such file" in run.stderr:
        pytest.skip("this triton has no ptxas")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.splitlines()[-1])
    found = collections.Counter()
    for key, r in report["results"].items():
        kernel, arch, spec, _ = json.loads(key)
        assert "error" not in r, (kernel, arch, spec, r.get("error"))
        assert r["spill bytes"] == 0 and r["registers"] <= 128 and r["cubin bytes"] > 1000, (
            kernel,
            arch,
            spec,
            r,
        )
        found[kernel, arch, spec[0][0]] += 1  # the pointers' type: *fp32, *bf16, *fp16
    for arch in (80, 90):  # every kernel in every dtype it takes, on both GPUs
        for kernel in ("_lrn_fwd_kernel", "_lrn_bwd_kernel"):
            assert all(found[kernel, arch, t] >= 3 for t in ("*fp32", "*bf16", "*fp16")), found
        assert found["_paper_sgd_kernel", arch, "*fp32"] >= 1, found
    assert report["launches"] > 10 * report["configurations"]  # many launches, few distinct kernels
