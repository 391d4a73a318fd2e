"""The zoo: shapes, the known parameter and MAC totals, towers, init, errors."""

import pytest
import torch
from torch import nn

import alexnet
from alexnet.analysis.summary import summarize
from alexnet.nn import LocalResponseNorm

EXPECTED = {  # name: (in_channels, input side, classes, parameters or None)
    "alexnet": (3, 227, 1000, 60_965_224),
    "alexnet_caffe": (3, 227, 1000, 60_965_224),
    "caffenet": (3, 227, 1000, 60_965_224),
    "alexnet_owt": (3, 224, 1000, 61_100_840),
    "alexnet_bn": (3, 227, 1000, None),
    "alexnet_d2l": (1, 224, 10, None),
    "cifar_convnet": (3, 32, 10, None),
    "cifar_local_11pct": (3, 24, 10, 1_116_490),
    "cifar_local_13pct": (3, 24, 10, 1_116_490),
}
NO_HIDDEN_FC = ("cifar_convnet", "cifar_local_11pct", "cifar_local_13pct")


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_registry_lists_every_model():
    assert alexnet.list_models() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes(name):
    cin, side, classes, params = EXPECTED[name]
    m = alexnet.create_model(name).eval()
    x = torch.randn(2, cin, side, side)
    with torch.no_grad():
        feats = m.forward_features(x)
        assert m(x).shape == (2, classes)
        torch.testing.assert_close(m.forward_head(feats), m(x))
        if name not in NO_HIDDEN_FC:
            assert m.forward_head(feats, pre_logits=True).shape == (2, 4096)
            assert m.embed(x, "fc6").shape == (2, 4096) and m.embed(x, "fc7").shape == (2, 4096)
    if params is not None:
        assert n_params(m) == params


def test_hand_counted_parameters():
    # conv: k*k*cin/groups*cout + cout; fc: in*out + out (paper Fig. 2 shapes, 2 towers)
    convs = [(11, 3, 96, 1), (5, 96, 256, 2), (3, 256, 384, 1), (3, 384, 384, 2), (3, 384, 256, 2)]
    fcs = [(9216, 4096), (4096, 4096), (4096, 1000)]
    total = sum(k * k * ci // g * co + co for k, ci, co, g in convs) + sum(i * o + o for i, o in fcs)
    assert total == 60_965_224 == n_params(alexnet.create_model("alexnet"))
    assert n_params(alexnet.create_model("alexnet", groups=1)) == 62_378_344
    assert n_params(alexnet.create_model("alexnet", num_classes=10)) == total - 4096 * 990 - 990
    # BatchNorm variant: the one-tower AlexNet + (gamma, beta) per BN channel (none after conv5)
    bn = 2 * (96 + 256 + 384 + 384 + 4096 + 4096)
    conv1_same = 0  # padding does not change parameter counts
    assert n_params(alexnet.create_model("alexnet_bn")) == 62_378_344 + bn + conv1_same
    # d2l: 1 input channel, fc6 from 6400, 10 classes
    d2l = (
        11 * 11 * 1 * 96
        + 96
        + 25 * 96 * 256
        + 256
        + 9 * 256 * 384
        + 384
        + 9 * 384 * 384
        + 384
        + 9 * 384 * 256
        + 256
        + 6400 * 4096
        + 4096
        + 4096 * 4096
        + 4096
        + 4096 * 10
        + 10
    )
    assert n_params(alexnet.create_model("alexnet_d2l")) == d2l
    cifar = 25 * 3 * 32 + 32 + 25 * 32 * 32 + 32 + 25 * 32 * 64 + 64 + 1024 * 10 + 10
    assert n_params(alexnet.create_model("cifar_convnet")) == cifar


@pytest.mark.parametrize(
    "name,side,params,macs",
    [
        ("alexnet", 227, 60_965_224, 724_406_816),
        ("alexnet_owt", 224, 61_100_840, 714_188_480),
    ],
)
def test_summary_totals(name, side, params, macs):
    rows = summarize(alexnet.create_model(name), side)
    assert sum(r.params for r in rows) == params
    assert sum(r.macs for r in rows) == macs


def test_layer_order_of_the_caffe_models():
    def kinds(m):
        return [type(x).__name__ for x in m.features][:4]

    assert kinds(alexnet.create_model("alexnet")) == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert kinds(alexnet.create_model("alexnet_caffe")) == [
        "Conv2d",
        "ReLU",
        "LocalResponseNorm",
        "MaxPool2d",
    ]
    assert kinds(alexnet.create_model("caffenet")) == ["Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm"]
    paper = alexnet.create_model("alexnet").features.norm1
    caffe = alexnet.create_model("caffenet").features.norm1
    assert (paper.k, paper.alpha, paper.convention) == (2.0, 1e-4, "paper")
    assert (caffe.k, caffe.alpha, caffe.convention) == (1.0, 1e-4, "caffe")
    assert not any(isinstance(x, LocalResponseNorm) for x in alexnet.create_model("alexnet_owt").modules())


def test_owt_has_torchvision_parameter_names():
    want = [f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")]
    want += [f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")]
    m = alexnet.create_model("alexnet_owt")
    assert list(m.state_dict()) == want
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["features.0.weight"] == (64, 3, 11, 11) and shapes["features.3.weight"] == (192, 64, 5, 5)
    assert shapes["classifier.1.weight"] == (4096, 9216) and shapes["classifier.6.weight"] == (1000, 4096)
    # a torchvision-style state dict (same names and shapes) loads strictly
    other = alexnet.create_model("alexnet_owt", seed=3).state_dict()
    m.load_state_dict(other, strict=True)
    assert all(torch.equal(m.state_dict()[k], other[k]) for k in other)


def test_towers_are_independent():
    """groups=2: conv2's first 128 maps see only the first 48 input maps (paper §3.2)."""
    conv2 = alexnet.create_model("alexnet").features.conv2
    x = torch.randn(1, 96, 27, 27)
    y = x.clone()
    y[:, 48:] = torch.randn(1, 48, 27, 27)
    a, b = conv2(x), conv2(y)
    torch.testing.assert_close(a[:, :128], b[:, :128], rtol=0, atol=0)
    assert not torch.allclose(a[:, 128:], b[:, 128:])
    one = alexnet.create_model("alexnet", groups=1).features.conv2
    assert not torch.allclose(one(x)[:, :128], one(y)[:, :128])
    m = alexnet.create_model("alexnet")
    assert [getattr(m.features, n).groups for n in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [
        1,
        2,
        1,
        2,
        2,
    ]


def test_embed_is_post_relu_fc_activation():
    m = alexnet.create_model("alexnet", seed=0).eval()
    x = torch.randn(2, 3, 227, 227)
    with torch.no_grad():
        flat = m.forward_features(x).flatten(1)
        fc6 = torch.relu(m.classifier.fc6(flat))
        fc7 = torch.relu(m.classifier.fc7(fc6))
        torch.testing.assert_close(m.embed(x, "fc6"), fc6)
        torch.testing.assert_close(m.embed(x, "fc7"), fc7)
        assert (m.embed(x, "fc7") >= 0).all()
    owt = alexnet.create_model("alexnet_owt", seed=0).eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 224, 224)
        f = torch.relu(owt.classifier[1](owt.avgpool(owt.forward_features(x)).flatten(1)))
        torch.testing.assert_close(owt.embed(x, "fc6"), f)


def test_paper_init_statistics():
    m = alexnet.create_model("alexnet", seed=0)
    f, c = m.features, m.classifier
    for layer in (f.conv1, f.conv3, c.fc6, c.fc7, c.fc8):
        w = layer.weight.detach().double()
        assert abs(w.mean().item()) < 3 * 0.01 / w.numel() ** 0.5 + 1e-9
        assert w.std().item() == pytest.approx(0.01, rel=0.06 if w.numel() < 50_000 else 0.01)
    for layer in (f.conv2, f.conv4, f.conv5, c.fc6, c.fc7):
        assert torch.equal(layer.bias, torch.ones_like(layer.bias))
    for layer in (f.conv1, f.conv3, c.fc8):
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_caffe_and_kaiming_init():
    m = alexnet.create_model("alexnet_caffe", seed=0)
    c, f = m.classifier, m.features
    assert c.fc6.weight.std().item() == pytest.approx(0.005, rel=0.01)
    assert c.fc8.weight.std().item() == pytest.approx(0.01, rel=0.01)
    assert torch.all(c.fc7.bias == 0.1) and torch.all(f.conv2.bias == 0.1) and torch.all(f.conv1.bias == 0)
    k = alexnet.create_model("alexnet_owt", seed=0)
    w = k.classifier[1].weight  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    bound = 1 / 9216**0.5
    assert w.abs().max().item() <= bound * (1 + 1e-6) and w.std().item() == pytest.approx(
        bound / 3**0.5, rel=0.01
    )
    assert alexnet.create_model("alexnet", init="kaiming", seed=0).features.conv2.bias.abs().max() < 1


def test_init_is_seeded():
    a = alexnet.create_model("caffenet", seed=7).state_dict()
    b = alexnet.create_model("caffenet", seed=7).state_dict()
    c = alexnet.create_model("caffenet", seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.conv1.weight"], c["features.conv1.weight"])
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    alexnet.create_model("cifar_convnet", seed=1)
    assert torch.equal(torch.rand(1), before)  # a seeded build leaves the global RNG alone


def test_cifar_convnet_options():
    relu = alexnet.create_model("cifar_convnet")
    tanh = alexnet.create_model("cifar_convnet", activation="tanh", lrn=False)
    assert sum(isinstance(m, LocalResponseNorm) for m in relu.modules()) == 2
    assert sum(isinstance(m, nn.Tanh) for m in tanh.modules()) == 3
    assert not any(isinstance(m, LocalResponseNorm) for m in tanh.modules())
    assert relu.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 64, 4, 4)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: alexnet.create_model("alexnett"), "valid names: alexnet, alexnet_bn"),
        (lambda: alexnet.create_model("alexnet", groupz=2), "unknown option.*valid options.*groups"),
        (lambda: alexnet.create_model("alexnet", groups=3), "groups must be 1"),
        (lambda: alexnet.create_model("alexnet", init="xavier"), "init must be one of"),
        (lambda: alexnet.create_model("alexnet", num_classes=0), "num_classes must be an integer 1..100,000"),
        (lambda: alexnet.create_model("alexnet", dropout=1.5), "dropout"),
        (lambda: alexnet.create_model("cifar_convnet", activation="gelu"), "activation must be one of"),
        (
            lambda: alexnet.create_model("alexnet")(torch.zeros(1, 3, 224, 224)),
            r"227x227 input \(sides 227..258",
        ),
        (lambda: alexnet.create_model("alexnet")(torch.zeros(1, 1, 227, 227)), r"\(N, 3, H, W\)"),
        (lambda: alexnet.create_model("alexnet")(torch.zeros(3, 227, 227)), r"\(N, 3, H, W\)"),
        (lambda: alexnet.create_model("alexnet_owt")(torch.zeros(1, 3, 32, 32)), ">= 63"),
        (lambda: alexnet.create_model("alexnet").embed(torch.zeros(1, 3, 227, 227), "fc8"), "fc6"),
    ],
)
def test_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_owt_takes_other_sizes():
    m = alexnet.create_model("alexnet_owt").eval()
    with torch.no_grad():
        assert m(torch.zeros(1, 3, 300, 300)).shape == (1, 1000)
