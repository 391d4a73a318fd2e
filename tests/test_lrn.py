"""LRN against the paper's formula written out here in float64 loops (§3.3)."""

import pytest
import torch

from alexnet.nn import LocalResponseNorm, lrn_reference


def formula(a: torch.Tensor, n, alpha, beta, k, convention):
    """b_i = a_i / (k + alpha' sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta, by hand."""
    a = a.double()
    C = a.shape[1]
    al = alpha / n if convention == "caffe" else alpha
    out = torch.empty_like(a)
    for i in range(C):
        lo, hi = max(0, i - n // 2), min(C - 1, i + n // 2)
        s = sum(a[:, j] ** 2 for j in range(lo, hi + 1))
        out[:, i] = a[:, i] / (k + al * s) ** beta
    return out


CASES = [  # (C, n, alpha, beta, k)
    (96, 5, 1e-4, 0.75, 2.0),  # the paper's conv1 layer
    (7, 5, 0.3, 0.75, 2.0),  # large alpha so the window really matters; edges on both sides
    (3, 5, 0.5, 0.75, 1.0),  # fewer channels than the window
    (10, 3, 0.2, 0.5, 1.5),
    (9, 7, 0.1, 1.0, 2.0),
    (4, 1, 0.5, 0.75, 2.0),  # n=1: each channel normalised by itself alone
]


@pytest.mark.parametrize("convention", ["paper", "caffe"])
@pytest.mark.parametrize("C,n,alpha,beta,k", CASES)
def test_matches_formula_float64_and_float32(convention, C, n, alpha, beta, k):
    g = torch.Generator().manual_seed(C * 100 + n)
    x = torch.randn(2, C, 4, 3, generator=g, dtype=torch.float64) * 3
    lrn = LocalResponseNorm(n, alpha, beta, k, convention)
    want = formula(x, n, alpha, beta, k, convention)
    torch.testing.assert_close(lrn(x), want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(lrn(x.float()).double(), want, rtol=1e-5, atol=1e-6)


def test_hand_computed_value():
    # one spatial position, channels [1, 2, 3], n=3, paper convention, alpha=1, beta=1, k=2
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).view(1, 3, 1, 1)
    y = LocalResponseNorm(3, alpha=1.0, beta=1.0, k=2.0)(x).flatten().tolist()
    assert y == pytest.approx([1 / (2 + 1 + 4), 2 / (2 + 1 + 4 + 9), 3 / (2 + 4 + 9)], rel=1e-12)
    # Caffe's convention divides alpha by n = 3
    y = LocalResponseNorm(3, alpha=3.0, beta=1.0, k=2.0, convention="caffe")(x).flatten().tolist()
    assert y == pytest.approx([1 / 7, 2 / 16, 3 / 15], rel=1e-12)


def test_caffe_convention_equals_torch_lrn():
    x = torch.randn(2, 12, 5, 5, dtype=torch.float64) * 4
    ours = LocalResponseNorm(5, 0.2, 0.75, 1.0, convention="caffe")(x)
    theirs = torch.nn.LocalResponseNorm(5, alpha=0.2, beta=0.75, k=1.0)(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("convention", ["paper", "caffe"])
def test_gradcheck(convention):
    x = (torch.randn(2, 6, 3, 2, dtype=torch.float64) * 2).requires_grad_()
    lrn = LocalResponseNorm(5, 0.4, 0.75, 2.0, convention)
    assert torch.autograd.gradcheck(lrn, (x,))
    assert torch.autograd.gradgradcheck(lambda t: lrn_reference(t, 5, 0.4, 0.75, 2.0, convention), (x,))


def test_other_ranks():
    x = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(LocalResponseNorm(5, 0.3)(x), formula(x, 5, 0.3, 0.75, 2.0, "paper"))
    x = torch.randn(3, 8, 5, dtype=torch.float64)
    torch.testing.assert_close(LocalResponseNorm(3, 0.3)(x), formula(x, 3, 0.3, 0.75, 2.0, "paper"))


@pytest.mark.parametrize(
    "kw,msg",
    [
        (dict(size=4), "odd"),
        (dict(size=0), "odd"),
        (dict(k=0.0), "k"),
        (dict(alpha=-1.0), "alpha"),
        (dict(convention="tf"), "convention"),
    ],
)
def test_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        LocalResponseNorm(**kw)
