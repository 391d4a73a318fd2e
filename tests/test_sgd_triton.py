"""The paper's update as one Triton kernel (training/sgd_triton.py) against the four torch ops it
replaces and the float64 formula. Without a GPU the kernel runs in Triton's interpreter on CPU
tensors (TRITON_INTERPRET=1, set before the module is imported); with one, on CUDA."""

import os

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")
triton = pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from alexnet.training import optim, sgd_triton  # noqa: E402
from test_fused_update import formula, problem, run  # noqa: E402

if DEVICE == "cpu" and isinstance(sgd_triton._paper_sgd_kernel, triton.runtime.jit.JITFunction):
    pytest.skip("sgd_triton was imported before TRITON_INTERPRET=1 was set", allow_module_level=True)


def torch_ops(w, g, v, lr, mu=0.9, wd=5e-4):
    """The reference: the four torch ops the kernel replaces, in float32."""
    v.mul_(mu).add_(g, alpha=-lr)
    v.add_(w, alpha=-lr * wd)
    w.add_(v)


@pytest.mark.parametrize("n", [1, 1023, 1024, 5000])  # less than, exactly and more than one block
def test_one_pass_equals_the_four_ops_within_fp32_rounding(n):
    gen = torch.Generator().manual_seed(n)
    w, g, v = (torch.randn(n, generator=gen) for _ in range(3))
    want_w, want_v = w.clone(), v.clone()
    torch_ops(want_w, g, want_v, 0.01)
    got_w, got_v = w.clone().to(DEVICE), v.clone().to(DEVICE)
    sgd_triton.paper_sgd_(got_w, g.to(DEVICE), got_v, 0.01, 0.9, 5e-4)
    # each element is a few fp32 roundings of the same sum, in another order
    ulp = torch.finfo(torch.float32).eps
    torch.testing.assert_close(got_v.cpu(), want_v, rtol=4 * ulp, atol=4 * ulp * want_v.abs().max().item())
    torch.testing.assert_close(got_w.cpu(), want_w, rtol=4 * ulp, atol=4 * ulp * want_w.abs().max().item())
    assert not torch.equal(got_w.cpu(), w)  # it did update


def test_paper_sgd_through_the_triton_kernel_matches_the_formula(monkeypatch):
    """PaperSGD with the Triton kernel as its fused update (as on CUDA), three steps, the rate
    dropping inside the velocity (§5), channels_last weights kept so."""
    calls = []
    monkeypatch.setitem(
        optim.FUSED, DEVICE, lambda p, v, *a: calls.append(1) or optim._triton_update(p, v, *a)
    )
    w0, lrs, grads = problem(1)
    ws, vs = run(
        [torch.nn.Parameter(w.clone().to(DEVICE)) for w in w0],
        lrs,
        [[g.to(DEVICE) for g in gs] for gs in grads],
    )
    assert len(calls) == len(w0) * len(lrs)
    for w, v, (want_w, want_v) in zip(ws, vs, formula(w0, lrs, grads)):
        torch.testing.assert_close(w.cpu().double(), want_w, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(v.cpu().double(), want_v, rtol=1e-5, atol=1e-7)
    assert ws[0].is_contiguous(memory_format=torch.channels_last)


def test_empty_tensor_is_left_alone():
    w = torch.empty(0, device=DEVICE)
    sgd_triton.paper_sgd_(w, w, w, 0.1, 0.9, 5e-4)
