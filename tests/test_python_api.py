"""The timm/torchvision-style Python API: create_model with weights, heads and stage maps, the
transforms (checked equal to `alexnet predict`), save_pretrained's card check, the Dataset, and
a user's own script (tests/user_script.py) run end to end."""

import inspect
import os
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import alexnet
from alexnet.card import Card
from alexnet.errors import BadInput
from alexnet.evaluation.predict import predict
from alexnet.models import ConvNet, FeatureNet
from conftest import write_image
from test_data_sources import _tar, write_cifar

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tv_weights(tmp_path_factory) -> Path:
    """A torchvision-format AlexNet file (alexnet-owt-*.pth's layout, seeded random values)."""
    path = tmp_path_factory.mktemp("w") / "alexnet-owt.pth"
    torch.save(alexnet.create_model("alexnet_owt", seed=1).state_dict(), path)
    return path


def two_class_folder(root: Path, per_class: int = 8) -> Path:
    """root/<red|blue>/*.jpg: noise around two colours, in a few sizes: easy to separate."""
    rng = np.random.default_rng(0)
    for c, colour in enumerate(((200, 40, 40), (40, 40, 200))):
        for i in range(per_class):
            h, w = 240 + 16 * (i % 3), 260 + 8 * i
            arr = np.clip(rng.normal(colour, 40, (h, w, 3)), 0, 255).astype(np.uint8)
            (root / ("red", "blue")[c]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / ("red", "blue")[c] / f"{i}.jpg", quality=90)
    return root


# ---- a user's script, end to end ------------------------------------------------------------
def test_users_timm_style_script(tv_weights, tmp_path):
    """create_model(pretrained=file, num_classes=10), resolve_data_config/create_transform, a plain
    DataLoader over a folder, 20 SGD steps with the loss falling, then reset_classifier(0) features,
    torch.compile(fullgraph=True), torch.export, fx extraction and torch.hub.load(source="local"),
    each compared with the eager net inside the script."""
    import user_script

    # torch.compile's default backend (inductor) builds C++ for the whole net: a minute of two cores;
    # test_traceable runs CPU inductor on an LRN net, this checks the one-graph trace of this one
    out = user_script.main(tv_weights, two_class_folder(tmp_path / "colours"), backend="aot_eager")
    losses = out["losses"]
    assert len(losses) == 20 and np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    assert out["logits"].shape == (4, 10) and out["features"].shape == (4, 4096)
    assert out["compiled"] < 1e-4 and out["exported"] < 1e-4 and out["fx"] == 0 and out["hub"] == 0


# ---- create_model ----------------------------------------------------------------------------
def test_list_models_and_pretrained_names():
    assert alexnet.list_models("alex*") == [
        "alexnet",
        "alexnet_bn",
        "alexnet_caffe",
        "alexnet_d2l",
        "alexnet_owt",
    ]
    assert alexnet.list_models(["*caffe*", "cifar_*"]) == [
        "alexnet_caffe",
        "caffenet",
        "cifar_convnet",
        "cifar_local_11pct",
        "cifar_local_13pct",
    ]
    assert alexnet.list_models(pretrained=True) == ["alexnet_caffe", "alexnet_owt", "caffenet"]
    assert alexnet.list_models("caffe*", pretrained=True) == ["caffenet"]
    assert alexnet.list_pretrained() == [
        "alexnet_caffe.bvlc_alexnet",
        "alexnet_caffe.bvlc_alexnet.npy",
        "alexnet_owt.torchvision",
        "caffenet.caffenet",
    ]
    assert alexnet.list_pretrained("*owt*") == ["alexnet_owt.torchvision"]


def test_help_lists_every_model_with_its_options_and_types_are_visible():
    doc = alexnet.create_model.__doc__
    for name in alexnet.list_models():
        assert f"    {name}(num_classes=" in doc
    assert "groups=2" in doc and "pool_size=3" in doc and "pretrained=True loads 'torchvision'" in doc
    hints = typing.get_type_hints(alexnet.create_model)
    assert hints["return"] == (ConvNet | FeatureNet)
    overloads = typing.get_overloads(alexnet.create_model) if hasattr(typing, "get_overloads") else []
    assert not overloads or [typing.get_type_hints(o)["return"] for o in overloads] == [ConvNet, FeatureNet]
    assert (Path(alexnet.__file__).parent / "py.typed").is_file()


def test_paper_net_has_no_weights_in_one_line():
    with pytest.raises(BadInput) as e:
        alexnet.create_model("alexnet", pretrained=True)
    assert "\n" not in str(e.value) and "nobody published weights of the paper's two-GPU network" in str(
        e.value
    )
    with pytest.raises(
        BadInput, match="alexnet_bn: no pretrained weights: models with weights: alexnet_caffe"
    ):
        alexnet.create_model("alexnet_bn", pretrained=True)
    with pytest.raises(ValueError, match="unknown pretrained name 'alexnet_owt.caffenet'"):
        alexnet.create_model("alexnet_owt.caffenet", pretrained=True)
    with pytest.raises(ValueError, match="unknown model 'resnet50'"):
        alexnet.create_model("resnet50")


def test_default_weights_by_name(monkeypatch, tv_weights):
    """pretrained=True is the architecture's own weights (hub.resolve stands in for the download)."""
    from alexnet.interop import hub

    asked = []
    monkeypatch.setattr(hub, "resolve", lambda name, progress=True: asked.append(name) or tv_weights)
    a = alexnet.create_model("alexnet_owt", pretrained=True)
    b = alexnet.create_model("alexnet_owt.torchvision", pretrained=True)
    c = alexnet.create_model("alexnet_owt", pretrained="torchvision")
    assert asked == ["torchvision"] * 3
    ref = torch.load(tv_weights, weights_only=True)
    for m in (a, b, c):
        assert all(torch.equal(v, ref[k]) for k, v in m.state_dict().items())
        assert (
            m.training
            and m.pretrained_cfg.accuracy["top1"] == 56.522
            and len(m.pretrained_cfg.classes) == 1000
        )


@pytest.mark.parametrize("name, init", [("alexnet_owt", "kaiming"), ("alexnet", "paper")])
def test_new_head_keeps_every_other_layer(tmp_path, name, init):
    """num_classes other than the weights': all but the last layer loaded, the new one initialised
    by the model's scheme (paper §5: N(0, 0.01), bias 0; torch's kaiming-uniform: |w| <= 1/sqrt(4096))."""
    src = alexnet.create_model(name, seed=3)
    path = alexnet.save_pretrained(src, tmp_path / "w.safetensors")
    m = alexnet.create_model(name, pretrained=path, num_classes=10, seed=0)
    head = m.get_classifier()
    assert m.num_classes == 10 and head.out_features == 10 and m.pretrained_cfg.num_classes == 10
    own = src.state_dict()
    head_keys = {k for k in own if k.startswith("classifier.") and own[k].shape[0] == 1000}
    assert all(torch.equal(v, own[k]) for k, v in m.state_dict().items() if k not in head_keys)
    w = head.weight.detach()
    if init == "paper":
        assert abs(w.std().item() - 0.01) < 0.001 and not head.bias.any()
    else:
        assert w.abs().max() <= 1 / 64 and head.bias.abs().max() <= 1 / 64 and w.std() > 0.005
    again = alexnet.create_model(name, pretrained=path, num_classes=10, seed=0)
    assert torch.equal(again.get_classifier().weight, head.weight)  # seeded


def test_in_chans_sums_pretrained_rgb_kernels(tv_weights):
    rgb = alexnet.create_model("alexnet_owt", pretrained=tv_weights).eval()
    grey = alexnet.create_model("alexnet_owt", pretrained=tv_weights, in_chans=1).eval()
    x = torch.rand(2, 1, 224, 224)
    with torch.no_grad():
        assert torch.allclose(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)
    card = grey.pretrained_cfg
    assert card.in_channels == 1 and card.mean == [pytest.approx(np.mean([0.485, 0.456, 0.406]))]
    assert alexnet.create_model("alexnet", in_chans=1).features.conv1.in_channels == 1


def test_checkpoint_path_is_strict(tmp_path):
    src = alexnet.create_model("cifar_convnet", seed=2, num_classes=4)
    path = alexnet.save_pretrained(src, tmp_path / "mine.pt")
    m = alexnet.create_model("cifar_convnet", checkpoint_path=os.fspath(path), num_classes=4)
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in m.state_dict().items())
    with pytest.raises(BadInput, match="a 4-class network, num_classes=10 asked"):
        alexnet.create_model("cifar_convnet", checkpoint_path=path, num_classes=10)
    with pytest.raises(BadInput, match="holds a cifar_convnet, not a alexnet"):
        alexnet.create_model("alexnet", checkpoint_path=path)


# ---- the head protocol and the stage maps, on every model -------------------------------------
@pytest.mark.parametrize("name", alexnet.list_models())
def test_timm_head_protocol_and_features_only(name):
    m = alexnet.create_model(name, seed=0).eval()
    s, c = m.input_size, m.in_channels
    x = torch.randn(2, c, s, s)
    head = m.get_classifier()
    assert (
        isinstance(head, nn.Linear)
        and head.in_features == m.num_features
        and head.out_features == m.num_classes
    )
    with torch.no_grad():
        maps = m.forward_features(x)
        pre = m.forward_head(maps, pre_logits=True)
        assert pre.shape == (2, m.num_features)
        assert torch.allclose(m.forward_head(maps), head(pre), atol=1e-6)
        # fc7 after its ReLU (paper §6.1); bn: BN follows it; cifar_*: no hidden fc layers
        if not name.startswith("cifar_") and name != "alexnet_bn":
            assert torch.equal(pre, m.embed(x, "fc7"))
        m.reset_classifier(0)
        assert m.num_classes == 0 and torch.equal(m(x), pre)
        m.reset_classifier(7)
        assert (
            m.num_classes == 7
            and m(x).shape == (2, 7)
            and torch.equal(m.forward_head(maps, pre_logits=True), pre)
        )

        f = alexnet.create_model(name, features_only=True).eval()
        f.load_state_dict({k: v for k, v in m.state_dict().items() if k.startswith("features.")})
        stages = f(x)
        info = f.feature_info
        assert [t.shape[1] for t in stages] == info.channels() and len(stages) == len(m.feature_info)
        if name.startswith("cifar_local"):  # 24 px: conv1 (before pool1), conv2 (before pool2), local4
            assert info.channels() == [64, 64, 32] and info.reduction() == [1, 2, 4]
        else:
            assert len(stages) == 4
        assert info.reduction() == sorted(info.reduction()) and info.module_name()[-1].startswith("features.")
        assert torch.equal(stages[-1], maps)  # the last stage is the trunk's output
        seen = {}
        hooks = [
            dict(m.named_modules())[n].register_forward_hook(
                lambda mod, i, o, n=n: seen.setdefault(n, o.clone())
            )
            for n in info.module_name()
        ]
        m(x)
        for h in hooks:
            h.remove()
        assert all(torch.equal(t, seen[n]) for t, n in zip(stages, info.module_name()))
        two = alexnet.create_model(name, features_only=True, out_indices=(0, -1))
        assert two.feature_info.module_name() == [info.module_name()[0], info.module_name()[-1]]
    n = len(m.feature_info)
    with pytest.raises(ValueError, match=f"out_indices must be stage numbers 0..{n - 1}"):
        alexnet.create_model(name, features_only=True, out_indices=(n,))


# ---- transforms --------------------------------------------------------------------------------
def test_transforms_compute_what_predict_computes(tmp_path, tv_weights):
    """A file path, the same file opened with PIL, and its pixels as a uint8 tensor all give the
    tensor `alexnet predict` feeds the network: the same probabilities, to the last bit."""
    big = write_image(tmp_path / "big.jpg", (700, 560), seed=4)  # > 2x the stored side: DCT draft decoding
    small = write_image(tmp_path / "small.png", (300, 260), seed=5)
    results, card = predict([str(big), str(small)], str(tv_weights), topk=5, progress=False)
    net = alexnet.create_model("alexnet_owt", pretrained=tv_weights).eval()
    tf = net.pretrained_cfg.transforms()
    for path, (_, top, _) in zip((big, small), results):
        x = tf(path)
        assert torch.equal(x, tf(Image.open(path))) and torch.equal(x, tf(os.fspath(path)))
        with torch.no_grad():
            p = F.softmax(net(x[None]), 1)[0]
        v, i = p.topk(5)
        assert [(card.class_name(j), float(q)) for j, q in zip(i.tolist(), v)] == top
    pixels = torch.from_numpy(np.asarray(Image.open(small).convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(tf(pixels), tf(small)) and torch.equal(tf(pixels[None])[0], tf(small))
    assert torch.equal(tf(np.asarray(Image.open(small))), tf(small))
    with pytest.raises(TypeError, match="expected a uint8 image tensor"):
        tf(pixels.float())


def test_resolve_data_config_and_create_transform(tv_weights):
    net = alexnet.create_model("alexnet_owt", pretrained=tv_weights)
    cfg = alexnet.resolve_data_config(net)
    assert cfg == alexnet.resolve_data_config({}, model=net) == net.pretrained_cfg.data_config()
    assert cfg["input_size"] == (3, 224, 224) and cfg["resize"] == 256 and cfg["std"] == [0.229, 0.224, 0.225]
    assert alexnet.resolve_data_config({"crop_pct": 0.5}, model=net)["crop_pct"] == 0.5
    paper = alexnet.resolve_data_config(alexnet.create_model("alexnet"))
    assert (paper["input_size"], paper["resize"], paper["pixel_scale"], paper["std"]) == (
        (3, 227, 227),
        256,
        255.0,
        None,
    )
    assert alexnet.resolve_data_config(alexnet.create_model("caffenet"))["channel_order"] == "BGR"
    img = torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8)
    # eval: the card's pipeline, centre crop; timm's spelling of the same
    ev = alexnet.create_transform(**cfg)
    assert torch.equal(ev(img), net.pretrained_cfg.pipeline().eval(img[None])[0])
    assert torch.equal(alexnet.create_transform(**cfg, is_training=False)(img), ev(img))
    # train: §4.1's random crop, mirror and PCA noise, from the generator given
    tr = alexnet.create_transform(**cfg, train=True, generator=torch.Generator().manual_seed(0))
    pipe = net.pretrained_cfg.pipeline()
    pipe.flip, pipe.pca_std = True, 0.1
    assert torch.equal(tr(img), pipe.train(img[None], torch.Generator().manual_seed(0))[0])
    outs = [tr(img) for _ in range(4)]
    assert all(o.shape == (3, 224, 224) for o in outs) and not torch.equal(outs[0], outs[1])
    # PCA noise along the statistics given: zero eigenvalues, no noise
    stats = {"eigval": torch.zeros(3), "eigvec": torch.eye(3)}
    quiet = alexnet.create_transform(
        **cfg, train=True, flip=False, stats=stats, generator=torch.Generator().manual_seed(1)
    )
    crop = alexnet.create_transform(
        **cfg, train=True, flip=False, pca_std=0, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(quiet(img), crop(img))


def test_default_cards_follow_the_training_recipes():
    """Before any weights a model preprocesses as `alexnet train --model NAME` would (with ImageNet's
    channel means where a run computes its own mean image)."""
    from alexnet.training import build_config
    from alexnet.training.setup import make_pipeline

    for name in alexnet.list_models():
        card = alexnet.default_card(name)
        if alexnet.models.model_info(name).weights:
            continue  # the published weights' preprocessing (test_interop checks those cards)
        cfg = build_config(model=name, data="/nonexistent")  # (its native size unknown: the recipe's resize)
        pipe = make_pipeline(cfg, cfg.crop, None, card.in_channels)
        assert (card.input_size, card.resize, card.pixel_scale) == (cfg.crop, cfg.resize, cfg.pixel_scale), (
            name
        )
        assert card.mean == pytest.approx(
            pipe.normalize.mean.tolist() * (card.in_channels // len(pipe.normalize.mean))
        )
        assert card.std == cfg.std


# ---- save_pretrained writes the card that fits, or refuses ---------------------------------------
def test_save_pretrained_refuses_a_card_that_does_not_fit(tmp_path, tv_weights):
    m = alexnet.create_model("alexnet_owt", pretrained=tv_weights)
    card = m.pretrained_cfg
    m.reset_classifier(10)
    with pytest.raises(
        BadInput,
        match=r"classifier.6.weight has shape \(10, 4096\), the model expects \(1000, 4096\)"
        r".*the card does not fit the weights",
    ):
        alexnet.save_pretrained(m, card, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()
    out = alexnet.save_pretrained(m, tmp_path / "ok.safetensors")  # the card that fits
    back, back_card = alexnet.load_pretrained(out)
    assert back_card.num_classes == 10 and back_card.std == card.std and back_card.classes == []
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(back(x), m.eval()(x))
    m.reset_classifier(0)
    with pytest.raises(BadInput, match="has no output layer"):
        alexnet.save_pretrained(m, tmp_path / "headless.pt")
    with pytest.raises(TypeError):
        Card("alexnet", 1000, 227)  # keyword arguments only


def test_load_pretrained_new_head_and_readers_table(tmp_path, tv_weights):
    from alexnet.interop.readers import READERS, reader_for

    net, card = alexnet.load_pretrained(tv_weights, num_classes=3)
    assert net.num_classes == 3 and card.num_classes == 3 and net.pretrained_cfg is card
    assert reader_for(Path("a/model_best.pth.tar")) is READERS[".pth.tar"]
    assert reader_for(Path("W.WEIGHTS.H5")) is READERS[".weights.h5"]
    assert reader_for(Path("m.onnx")) is READERS[".onnx"]  # the .onnx files `convert` writes read back
    with pytest.raises(ValueError, match=r"unknown weights type \.tflite; expected one of \.caffemodel"):
        reader_for(Path("m.tflite"))


# ---- data from Python -----------------------------------------------------------------------------
def test_image_folder_over_every_source(tmp_path):
    folder = two_class_folder(tmp_path / "f", per_class=3)
    jpg = (folder / "red" / "0.jpg").read_bytes()
    tar = _tar(tmp_path / "d.tar", [(f"{c}/{i}.jpg", jpg) for c in ("red", "blue") for i in range(3)])
    for s in range(2):
        _tar(
            tmp_path / f"train-{s:03d}.tar",
            [(f"k{s}{i}.jpg", jpg) for i in range(3)] + [(f"k{s}{i}.cls", str(s).encode()) for i in range(3)],
        )
    cifar, _ = write_cifar(tmp_path / "cifar-10-python.tar.gz")
    tf = alexnet.create_transform(32)
    for root, n, classes in (
        (folder, 6, ["blue", "red"]),
        (tar, 6, ["blue", "red"]),
        (tmp_path / "train-{000..001}.tar", 6, ["0", "1"]),
        (cifar, 20, [f"c{i}" for i in range(10)]),
    ):
        ds = alexnet.data.ImageFolder(
            root if isinstance(root, Path) and root.exists() else str(root),
            transform=tf,
            target_transform=lambda y: y * 10,
        )
        assert len(ds) == n and ds.classes == classes, root
        x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert set(y.tolist()) <= {10 * i for i in range(len(classes))}
    raw = alexnet.data.ImageFolder(folder)[0][0]
    assert raw.dtype == torch.uint8 and raw.shape == (3, 240, 260)  # no transform: its own pixels
    assert torch.equal(
        alexnet.data.ImageFolder(cifar, "test")[1][0],
        torch.from_numpy(alexnet.data.open_source(str(cifar), "test").read(1)),
    )


def test_public_paths_take_pathlike(tmp_path, tv_weights):
    folder = two_class_folder(tmp_path / "f", per_class=2)
    assert len(alexnet.data.open_dataset(folder, "train")) == 4
    assert len(alexnet.data.open_source(folder, None)) == 4
    net, card = alexnet.load_pretrained(Path(tv_weights))
    out = alexnet.save_pretrained(net, card, tmp_path / "n.safetensors")
    alexnet.create_model("alexnet_owt", pretrained=out, checkpoint_path=None)
    stats = {"mean": torch.zeros(3), "std": torch.ones(3), "eigval": torch.ones(3), "eigvec": torch.eye(3)}
    alexnet.data.save_stats(stats, tmp_path / "s.pt")
    alexnet.create_transform(227, stats=tmp_path / "s.pt")
    (tmp_path / "labels.txt").write_text("n01 a\nn02 b\n")
    assert alexnet.card.read_labels(tmp_path / "labels.txt") == ["a", "b"]
    assert len(predict([folder / "red"], tv_weights, topk=1, progress=False)[0]) == 2
    from alexnet.evaluation.evaluate import evaluate

    small = alexnet.create_model("cifar_convnet", num_classes=2, seed=0)
    small.pretrained_cfg = alexnet.default_card("cifar_convnet", 2)
    small.pretrained_cfg.classes = ["blue", "red"]
    w = alexnet.save_pretrained(small, tmp_path / "small.pt")
    result = evaluate(w, folder, split="train", workers=0, progress=False)
    assert result["images"] == 4 and result["models"] == [str(w)] and result["data"] == str(folder)


# ---- torch.hub ----------------------------------------------------------------------------------
def test_hubconf_entries(tmp_path, tv_weights):
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf_under_test", REPO / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    entries = [
        n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")
    ]  # as torch.hub.list
    assert entries == alexnet.list_models()
    m = torch.hub.load(str(REPO), "cifar_convnet", source="local", num_classes=3, seed=0)
    assert torch.equal(
        m.get_classifier().weight,
        alexnet.create_model("cifar_convnet", num_classes=3, seed=0).get_classifier().weight,
    )
    with pytest.raises(BadInput, match="no pretrained weights"):
        torch.hub.load(str(REPO), "alexnet", source="local", pretrained=True)
    assert "create_model('caffenet'" in hubconf.caffenet.__doc__
    assert inspect.signature(torch.hub.load(str(REPO), "alexnet_d2l", source="local").forward)
