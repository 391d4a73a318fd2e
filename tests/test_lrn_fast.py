"""The fused LRN (C kernel on CPU, torch-ops elsewhere) computes the reference function."""

import platform
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
        monkeypatch.setattr(native, "load", lambda *args, **kwargs: None)
    return request.param


def conv1_like(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(shape, generator=g, dtype=dtype) * 40)  # post-ReLU, alpha*sum ~ 1


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    "convention,alpha,k", [("paper", 1e-4, 2.0), ("caffe", 1e-4, 1.0), ("paper", 0.3, 2.0)]
)
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


@pytest.mark.parametrize(
    "shape,size", [((2, 7, 3, 4), 5), ((2, 3, 5, 5), 5), ((4, 9), 3), ((2, 8, 6), 7), ((1, 96, 55, 55), 5)]
)
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
def test_half_precision(path, dtype, tol):
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


@pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None,
    reason="torch.compile on CPU needs a C++ compiler",
)
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


def bf16_case(shape, channels_last, seed):
    """bf16 x and g, and the float64 reference on exactly those (bf16-rounded) values."""
    g_ = torch.Generator().manual_seed(seed)
    x = conv1_like(shape, seed).bfloat16()
    g = torch.randn(shape, generator=g_).bfloat16()
    if channels_last:
        x, g = x.to(memory_format=torch.channels_last), g.to(memory_format=torch.channels_last)
    return x, g


def check_lrn(x, g, size, alpha, k, convention, rtol):
    """Forward and backward of local_response_norm on x (any dtype) against float64 on the same
    values: |err| <= rtol * |want| + rtol * max|want| (the backward's difference of two terms
    cancels, so elements near zero are held to the scale of the whole gradient)."""
    x64 = x.double().requires_grad_()
    want = lrn_reference(x64, size, alpha, 0.75, k, convention)
    (want_grad,) = torch.autograd.grad(want, x64, g.double())
    xr = x.detach().requires_grad_()
    y = local_response_norm(xr, size, alpha, 0.75, k, convention)
    (grad,) = torch.autograd.grad(y, xr, g)
    assert y.dtype == grad.dtype == x.dtype
    assert y.is_contiguous(memory_format=torch.channels_last) == x.is_contiguous(
        memory_format=torch.channels_last
    )
    torch.testing.assert_close(y.double(), want.detach(), rtol=rtol, atol=rtol * want.abs().max().item())
    torch.testing.assert_close(grad.double(), want_grad, rtol=rtol, atol=rtol * want_grad.abs().max().item())


# channel counts around the 16-lane vectors (fewer, a partial last vector, the paper's 96) and
# windows of 3 (cifar_convnet), 5 (the paper) and 7 (the general path), both conventions
BF16_CASES = [
    ((2, 7, 5, 3), 5, 0.3, 2.0, "paper"),
    ((2, 20, 4, 5), 3, 0.2, 1.0, "caffe"),
    ((1, 96, 6, 7), 5, 1e-4, 2.0, "paper"),
    ((2, 37, 3, 3), 7, 0.5, 1.0, "caffe"),
    ((3, 40), 5, 0.3, 2.0, "paper"),
]


@pytest.mark.parametrize(
    "channels_last,shape,size,alpha,k,convention",
    [(cl, *case) for cl in (False, True) for case in BF16_CASES if not cl or len(case[0]) == 4],
)  # channels_last needs 4 dimensions
def test_bf16_kernel_matches_float64(path, channels_last, shape, size, alpha, k, convention):
    x, g = bf16_case(shape, channels_last, seed=len(shape) * 100 + shape[1])
    # bf16 keeps 8 significant bits: one rounding of the output is 2^-9 relative
    check_lrn(x, g, size, alpha, k, convention, rtol=1e-2)


@pytest.mark.parametrize("shape,size,alpha,k,convention", BF16_CASES)
def test_float32_kernel_all_widths(path, shape, size, alpha, k, convention):
    x = conv1_like(shape, seed=shape[1])
    g = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    check_lrn(x, g, size, alpha, k, convention, rtol=1e-5)
    if len(shape) == 4:
        cl = x.to(memory_format=torch.channels_last), g.to(memory_format=torch.channels_last)
        check_lrn(*cl, size, alpha, k, convention, rtol=1e-5)


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which("cc") is None,
    reason="x86-64 with a C compiler only",
)
def test_portable_build_matches_float64(monkeypatch, tmp_path):
    """The kernel is built with -march=native on the user's machine: the plain-C build that a
    CPU without AVX-512 gets must compile and compute the same function."""
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path))
    monkeypatch.setattr(
        native, "FLAGS", [f if f != "-march=native" else "-march=x86-64-v2" for f in native.FLAGS]
    )
    monkeypatch.setattr(native, "_libs", {})
    monkeypatch.setattr(lrn_mod, "_native_ok", None)  # the layer module keeps what it loaded
    monkeypatch.setattr(lrn_mod, "_native_lib", None)
    for shape, size, alpha, k, convention in BF16_CASES[:3]:
        x, g = bf16_case(shape, True, seed=3)
        check_lrn(x, g, size, alpha, k, convention, rtol=1e-2)
        x32, g32 = x.float(), g.float()
        check_lrn(x32, g32, size, alpha, k, convention, rtol=1e-5)
        check_lrn(x32.contiguous(), g32.contiguous(), size, alpha, k, convention, rtol=1e-5)
    assert list(tmp_path.glob("kernels/lrn_kernel-*.so"))


def test_autocast_bf16_takes_the_kernel(monkeypatch):
    """Under CPU bf16 autocast the conv outputs are bf16: the LRN must run the C kernel on them,
    forward and backward, in channels_last (no fallback to float32 torch ops)."""
    if native.load(lrn_mod._KERNEL, openmp=True) is None:
        pytest.skip("no C compiler here: the native kernel cannot be built")
    import alexnet

    calls = []
    real = lrn_mod._native_call
    monkeypatch.setattr(
        lrn_mod,
        "_native_call",
        lambda kind, layout, tensors, x, *a: (
            calls.append((kind, layout, x.dtype)),
            real(kind, layout, tensors, x, *a),
        )[1],
    )
    monkeypatch.setattr(lrn_mod._LRNFunction, "apply", None)  # the torch-ops path would fail
    m = alexnet.create_model("cifar_convnet", seed=0).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    out.float().sum().backward()
    n_lrn = sum(isinstance(mod, LocalResponseNorm) for mod in m.modules())
    assert n_lrn > 0
    assert sorted(calls) == sorted([("fwd", "nhwc", torch.bfloat16), ("bwd", "nhwc", torch.bfloat16)] * n_lrn)
