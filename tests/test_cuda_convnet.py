"""§3.3's CIFAR-10 nets as cuda-convnet's layers-conv-local-{11,13}pct.cfg define them: the
locally connected layer against a loop over positions, rnorm against cuda-convnet's formula in
float64, shapes and parameter counts from the cfg by hand, init, and the recipe's per-layer rates."""

import math

import pytest
import torch
import torch.nn.functional as F

import alexnet
from alexnet.analysis.summary import summarize
from alexnet.errors import BadInput
from alexnet.models.init import named_weight_layers
from alexnet.nn import LocallyConnected2d
from alexnet.training import build_config
from alexnet.training.optim import Schedule, make_optimizer


def loop_local(x, weight, bias, k, stride, padding):
    """Each output position's own filters applied by hand: out[n, f, i, j] = b[f, i, j] +
    sum_{c, dy, dx} x_pad[n, c, i s + dy, j s + dx] w[i, j, c, dy, dx, f]."""
    n, c, side, _ = x.shape
    out_side = math.isqrt(weight.shape[0])
    xp = F.pad(x, [padding] * 4)
    w = weight.reshape(out_side, out_side, c, k, k, -1)
    out = torch.zeros(n, w.shape[-1], out_side, out_side, dtype=x.dtype)
    for i in range(out_side):
        for j in range(out_side):
            patch = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = torch.einsum("ncyx,cyxf->nf", patch, w[i, j]) + bias[:, i, j]
    return out


@pytest.mark.parametrize(
    "cin,cout,side,k,stride,pad", [(64, 32, 6, 3, 1, 1), (3, 5, 7, 3, 2, 0), (2, 4, 5, 5, 1, 2)]
)
def test_local_layer_matches_a_loop_over_positions(cin, cout, side, k, stride, pad):
    torch.manual_seed(0)
    m = LocallyConnected2d(cin, cout, side, k, stride, pad).double()
    # cuda-convnet's modulesX = 1 + ceil((2 pad + side - k) / stride)
    assert m.out_size == 1 + math.ceil((2 * pad + side - k) / stride)
    assert m.weight.shape == (m.out_size**2, cin * k * k, cout) and m.bias.shape == (
        cout,
        m.out_size,
        m.out_size,
    )
    x = torch.randn(3, cin, side, side, dtype=torch.float64, requires_grad=True)
    y = m(x)
    ref = loop_local(x, m.weight, m.bias, k, stride, pad)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, m.weight, m.bias), g)
    want = torch.autograd.grad(ref, (x, m.weight, m.bias), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_local_layer_unshared_and_size_checks():
    m = LocallyConnected2d(1, 1, 3, 1)
    with torch.no_grad():  # position (1, 2) alone gets weight 2: no other position sees it
        m.weight.zero_(), m.bias.zero_()
        m.weight[1 * 3 + 2] = 2.0
    y = m(torch.ones(1, 1, 3, 3))
    assert y.sum() == 2.0 and y[0, 0, 1, 2] == 2.0
    with pytest.raises(ValueError, match="expects 3x3 input"):
        m(torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="does not fit"):
        LocallyConnected2d(1, 1, 2, 5)


def cuda_convnet_rnorm(x, size, scale, power):
    """conv_util.cu kFCNorm with layer.py's scale/size, float64, written as loops over maps:
    y_i = x_i (1 + scale/size sum_{j = i - size//2}^{i - size//2 + size - 1, 0 <= j < C} x_j^2)^-pow."""
    x = x.double()
    c = x.shape[1]
    out = torch.empty_like(x)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i - size // 2 + size)
        denom = 1 + (scale / size) * (x[:, lo:hi] ** 2).sum(1)
        out[:, i] = x[:, i] * denom**-power
    return out


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_rnorm_is_cuda_convnets_formula(layout):
    m = alexnet.create_model("cifar_local_11pct", seed=0)
    norm = m.features.rnorm1
    # activations of the size the net sees: ReLU outputs of 0-255 inputs reach tens to hundreds
    x = torch.rand(2, 64, 5, 5) * 300
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    want = cuda_convnet_rnorm(x, 5, 0.001, 0.75)
    torch.testing.assert_close(norm(x).double(), want, rtol=2e-5, atol=1e-4)
    torch.testing.assert_close(norm(x.double()), want, rtol=1e-12, atol=1e-12)
    assert (want / x.double()).min() < 0.5  # at this scale rnorm does act (cifar_convnet's hardly did)


def test_shapes_follow_cuda_convnets_size_rules():
    m = alexnet.create_model("cifar_local_11pct").eval()
    rows = {r.name.split(".")[-1]: r.shape for r in summarize(m)}
    # pool: outputsX = ceil((side - start - sizeX) / stride) + 1, start 0: 24 -> 12 -> 6
    pool = lambda side: math.ceil((side - 0 - 3) / 2) + 1  # noqa: E731
    assert pool(24) == 12 and pool(12) == 6
    assert rows["conv1"] == rows["rnorm1"] == (64, 24, 24) and rows["pool1"] == (64, pool(24), pool(24))
    assert rows["conv2"] == (64, 12, 12) and rows["pool2"] == (64, pool(12), pool(12))
    assert rows["local3"] == rows["local4"] == (32, 6, 6) and rows["fc5"] == (10,)
    for side in range(9, 40):  # torch's ceil mode gives cuda-convnet's count at every side
        out = F.max_pool2d(torch.zeros(1, 1, side, side), 3, 2, ceil_mode=True).shape[-1]
        assert out == pool(side)
    assert "rnorm1" not in {
        r.name.split(".")[-1] for r in summarize(alexnet.create_model("cifar_local_13pct"))
    }


def test_parameter_counts_from_the_cfg():
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731  (sharedBiases=1)
    local = lambda side, k, cin, cout: side * side * (k * k * cin * cout + cout)  # noqa: E731  unshared
    total = (
        conv(5, 3, 64) + conv(5, 64, 64) + local(6, 3, 64, 32) + local(6, 3, 32, 32) + 6 * 6 * 32 * 10 + 10
    )
    assert total == 1_116_490
    for name in ("cifar_local_11pct", "cifar_local_13pct"):  # rnorm has no parameters
        assert sum(p.numel() for p in alexnet.create_model(name).parameters()) == total
    macs = sum(r.macs for r in summarize(alexnet.create_model("cifar_local_11pct")))
    assert macs == 24 * 24 * 64 * 75 + 12 * 12 * 64 * 1600 + 36 * 32 * 576 + 36 * 32 * 288 + 1152 * 10


def test_init_is_cuda_convnets_initW():
    m = alexnet.create_model("cifar_local_11pct", seed=1)
    layers = named_weight_layers(m)
    assert list(layers) == ["conv1", "conv2", "local3", "local4", "fc5"]
    want = {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc5": 0.01}  # the cfg's initW
    for name, layer in layers.items():
        assert layer.weight.std().item() == pytest.approx(want[name], rel=0.1)
        assert layer.weight.mean().abs().item() < want[name] * 0.1 and not layer.bias.any()
    a, b = (alexnet.create_model(n, seed=1) for n in ("cifar_local_11pct", "cifar_local_13pct"))
    for p, q in zip(a.parameters(), b.parameters()):  # the same draws: the nets differ by rnorm alone
        assert torch.equal(p, q)
    # conv1's initW 1e-4 keeps the first activations near 0.05 on 0-255 inputs, where rnorm is
    # the identity to 5 digits; it acts once training has grown them (here: conv1 x 100)
    x = torch.randn(2, 3, 24, 24) * 60
    torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        a.features.conv1.weight.mul_(100), b.features.conv1.weight.mul_(100)
    assert not torch.allclose(a(x), b(x), rtol=1e-2)


def test_recipe_is_layer_params_cfg(tmp_path):
    cfg = build_config("cuda-convnet", data="cifar10", run_dir=str(tmp_path / "r"), resize=None)
    assert (cfg.crop, cfg.mean, cfg.pixel_scale, cfg.flip, cfg.pca_std) == (24, "image", 255.0, True, 0.0)
    m = alexnet.create_model(cfg.model, seed=0)
    opt = make_optimizer(m, cfg)
    assert type(opt).__name__ == "PaperSGD"  # weights.cuh: inc = mom inc + eps grad - eps wc w
    got = {
        n: (g["lr"], g["weight_decay"])
        for g in opt.param_groups
        for n, p in m.named_parameters()
        if any(p is q for q in g["params"])
    }
    for name, (lr, wd) in got.items():
        layer = name.split(".")[1]
        if name.endswith("bias"):  # epsB 0.002, biases never decayed
            assert (lr, wd) == (0.002, 0.0), name
        else:  # epsW 0.001; wc 0 on conv1/conv2, 0.004 on local3/local4/fc10
            assert (lr, wd) == (0.001, 0.0 if layer in ("conv1", "conv2") else 0.004), name
    sched = Schedule(opt, cfg)  # ÷10 after epoch 60 and after epoch 70
    lrs = []
    for epoch in range(80):
        lrs.append(sched.lr)
        sched.after_epoch(epoch, None)
    assert lrs[59] == 0.001 and lrs[60] == pytest.approx(1e-4) and lrs[69] == pytest.approx(1e-4)
    assert lrs[70] == pytest.approx(1e-5) and lrs[79] == pytest.approx(1e-5)


@pytest.mark.parametrize(
    "values,match",
    [
        (dict(schedule="multistep", milestones=None), "needs milestones"),
        (dict(milestones=[70, 60]), "increasing epoch numbers"),
        (dict(decay_mult={"conv1": -1}), r"decay_mult: each multiplier must be a number in \[0, 1000\]"),
    ],
)
def test_schedule_and_decay_settings_are_checked(tmp_path, values, match):
    with pytest.raises(BadInput, match=match):
        build_config("cuda-convnet", data="cifar10", run_dir=str(tmp_path / "r"), resize=None, **values)


def test_unknown_decay_layer_is_named(tmp_path):
    cfg = build_config(
        "cuda-convnet", data="cifar10", run_dir=str(tmp_path / "r"), resize=None, decay_mult={"conv9": 0.0}
    )
    with pytest.raises(ValueError, match=r"--decay-mult: unknown layer\(s\) \['conv9'\]; layers: conv1"):
        make_optimizer(alexnet.create_model(cfg.model), cfg)
