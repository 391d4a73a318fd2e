"""The fused LRN (C kernel on CPU, torch-ops elsewhere) computes the reference function."""
import shutil

import pytest
import torch

from alexnet.nn import lrn as lrn_mod
from alexnet.nn import native
from alexnet.nn.lrn import LocalResponseNorm, local_response_norm, lrn_reference

from test_lrn import formula


@pytest.fixture(params=["native", "torch-ops"])
def path(request, monkeypatch):
    if request.param == "native":
        if native.load(lrn_mod._KERNEL) is None:
            pytest.skip("no C compiler here: the native kernel cannot be built")
    else:
        monkeypatch.setattr(native, "load", lambda source: None)
    return request.param


def conv1_like(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(shape, generator=g, dtype=dtype) * 40)  # post-ReLU, alpha*sum ~ 1


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("convention,alpha,k", [("paper", 1e-4, 2.0), ("caffe", 1e-4, 1.0), ("paper", 0.3, 2.0)])
def test_float32_matches_reference(path, channels_last, convention, alpha, k):
    x = conv1_like((3, 16, 9, 7))
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    g = torch.randn(x.shape)
    x64 = x.double().requires_grad_()
    want = lrn_reference(x64, 5, alpha, 0.75, k, convention)
    (want_grad,) = torch.autograd.grad(want, x64, g.double())
    x = x.requires_grad_()
    y = local_response_norm(x, 5, alpha, 0.75, k, convention)
    (grad,) = torch.autograd.grad(y, x, g)
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double(), want_grad, rtol=1e-5, atol=1e-5 * want_grad.abs().max().item())


@pytest.mark.parametrize("shape,size", [((2, 7, 3, 4), 5), ((2, 3, 5, 5), 5), ((4, 9), 3), ((2, 8, 6), 7),
                                        ((1, 96, 55, 55), 5)])
def test_float64_formula_and_gradcheck(path, shape, size):
    x = conv1_like(shape, dtype=torch.float64) / 10
    lrn = LocalResponseNorm(size, 0.3, 0.75, 2.0)
    torch.testing.assert_close(lrn(x), formula(x, size, 0.3, 0.75, 2.0, "paper"), rtol=1e-12, atol=1e-14)
    if x.numel() < 500:
        for beta in (0.75, 0.6):  # the beta=0.75 fast path and the general power
            f = LocalResponseNorm(size, 0.3, beta, 2.0, convention="caffe")
            assert torch.autograd.gradcheck(f, (torch.randn(shape, dtype=torch.float64).requires_grad_(),))


def test_channels_last_gradcheck(path):
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(LocalResponseNorm(5, 0.5, 0.75, 1.0), (x,))


def test_non_contiguous_input(path):
    x = conv1_like((2, 12, 8, 8))[:, ::2]  # every other channel: a strided view
    torch.testing.assert_close(local_response_norm(x, 5, 0.1), lrn_reference(x.contiguous(), 5, 0.1))


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 2e-2), (torch.float16, 2e-3)])
def test_half_precision(dtype, tol):
    x = conv1_like((2, 16, 5, 5)).to(dtype).requires_grad_()
    y = local_response_norm(x, 5, 1e-4, 0.75, 2.0)
    assert y.dtype == dtype
    xf = x.detach().float().requires_grad_()
    want = lrn_reference(xf)
    torch.testing.assert_close(y.float(), want, rtol=tol, atol=tol)
    y.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(x.grad.float(), xf.grad, rtol=tol, atol=tol * xf.grad.abs().max().item())


def test_bf16_autocast_on_cpu():
    import alexnet
    m = alexnet.create_model("cifar_convnet", seed=0)
    x = torch.randn(4, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
        out.float().sum().backward()
    ref = m(x)
    assert torch.isfinite(out.float()).all() and m.features.conv1.weight.grad is not None
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max() + 1e-2


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_torch_compile_matches_eager():
    import alexnet
    m = alexnet.create_model("cifar_convnet", seed=0)
    x = torch.randn(4, 3, 32, 32)
    want = m(x)
    compiled = torch.compile(m)
    got = compiled(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    got.sum().backward()
    assert m.features.conv1.weight.grad is not None
