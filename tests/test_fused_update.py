"""The paper's update (§5) as one C sweep on CPU computes what the four torch ops compute."""

import pytest
import torch

from alexnet.nn import native
from alexnet.training import optim
from alexnet.training.optim import PaperSGD


def run(params, lrs, grads):
    opt = PaperSGD(params, lr=lrs[0], momentum=0.9, weight_decay=5e-4)
    for lr, gs in zip(lrs, grads):
        for group in opt.param_groups:
            group["lr"] = lr
        for p, g in zip(params, gs):
            p.grad = g.clone().contiguous(memory_format=torch.channels_last) if g.dim() == 4 else g.clone()
        opt.step()
    return [p.detach() for p in params], [opt.state[p]["velocity"] for p in params]


def test_fused_paper_update_matches_the_formula(monkeypatch):
    if native.load(optim._KERNEL, openmp=True) is None:
        pytest.skip("no C compiler here")
    gen = torch.Generator().manual_seed(0)
    w0 = [
        torch.randn(8, 4, 3, 3, generator=gen).contiguous(memory_format=torch.channels_last),
        torch.randn(70_001, generator=gen),
    ]  # big enough to be split over threads
    lrs = [0.1, 0.1, 0.01]  # the rate drops: the paper keeps it inside the velocity
    grads = [[torch.randn(w.shape, generator=gen) for w in w0] for _ in lrs]
    calls = []
    real = native.load
    monkeypatch.setattr(native, "load", lambda *a, **k: calls.append(a) or real(*a, **k))
    fused_w, fused_v = run([torch.nn.Parameter(w.clone()) for w in w0], lrs, grads)
    assert len(calls) == 2 * len(lrs)  # every step of both tensors took the C path
    for w, v, (want_w, want_v) in zip(fused_w, fused_v, formula(w0, lrs, grads)):
        torch.testing.assert_close(w.double(), want_w, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(v.double(), want_v, rtol=1e-5, atol=1e-7)
    assert fused_w[0].is_contiguous(memory_format=torch.channels_last)


def formula(w0, lrs, grads):
    """The update in float64 by hand: v <- 0.9 v - 0.0005 eps w - eps g ; w <- w + v."""
    out = []
    for i, w in enumerate(w0):
        v, ww = torch.zeros_like(w, dtype=torch.float64), w.double()
        for lr, gs in zip(lrs, grads):
            v = 0.9 * v - 5e-4 * lr * ww - lr * gs[i].double()
            ww = ww + v
        out.append((ww, v))
    return out


def problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    w0 = [
        torch.randn(8, 4, 3, 3, generator=gen).contiguous(memory_format=torch.channels_last),
        torch.randn(3001, generator=gen),
        torch.randn(5, 7, generator=gen),
    ]
    lrs = [0.1, 0.1, 0.01]
    return w0, lrs, [[torch.randn(w.shape, generator=gen) for w in w0] for _ in lrs]


def test_without_a_fused_kernel_the_multi_tensor_ops_compute_the_same(monkeypatch):
    """Where no fused kernel runs (another device, dtype or layout) the four ops run once over all
    the remaining tensors (torch._foreach_*): the same update."""
    monkeypatch.setattr(optim, "FUSED", {})
    w0, lrs, grads = problem()
    ws, vs = run([torch.nn.Parameter(w.clone()) for w in w0], lrs, grads)
    for w, v, (want_w, want_v) in zip(ws, vs, formula(w0, lrs, grads)):
        torch.testing.assert_close(w.double(), want_w, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(v.double(), want_v, rtol=1e-5, atol=1e-7)


def test_cuda_takes_the_triton_kernel_cpu_the_c_kernel():
    assert optim.FUSED["cuda"] is optim._triton_update and optim.FUSED["cpu"] is optim._c_update
    assert "mps" not in optim.FUSED  # elsewhere: the multi-tensor ops
    p = torch.zeros(4, 3, 2, 2).contiguous(memory_format=torch.channels_last)
    assert optim._one_sweep(p, torch.zeros_like(p), torch.zeros_like(p))
    assert not optim._one_sweep(p, torch.zeros(4, 3, 2, 2), torch.zeros_like(p))  # layouts differ
    assert not optim._one_sweep(p.double(), p.double(), p.double())
