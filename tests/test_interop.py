"""Pretrained weights: generated files in each format's exact layout, checked against an
independent float64 forward with Caffe's semantics; refusals; conversions; prediction."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import alexnet
from alexnet.card import Card, read_labels
from alexnet.cli import main
from alexnet.interop.caffe_pb import MESSAGES
from alexnet.interop.pretrained import load_pretrained, save_pretrained
from conftest import write_image
from hostile_files import field, varint  # protobuf wire format by hand

SHAPES = {
    "conv1": (96, 3, 11, 11),
    "conv2": (256, 48, 5, 5),
    "conv3": (384, 256, 3, 3),
    "conv4": (384, 192, 3, 3),
    "conv5": (256, 192, 3, 3),
    "fc6": (4096, 9216),
    "fc7": (4096, 4096),
    "fc8": (1000, 4096),
}
CAFFENET_ORDER = [
    "data",
    "conv1",
    "relu1",
    "pool1",
    "norm1",
    "conv2",
    "relu2",
    "pool2",
    "norm2",
    "conv3",
    "relu3",
    "conv4",
    "relu4",
    "conv5",
    "relu5",
    "pool5",
    "fc6",
    "relu6",
    "drop6",
    "fc7",
    "relu7",
    "drop7",
    "fc8",
    "prob",
]
TYPES = {
    "data": ("Data", 5),
    "conv": ("Convolution", 4),
    "relu": ("ReLU", 18),
    "pool": ("Pooling", 17),
    "norm": ("LRN", 15),
    "fc": ("InnerProduct", 14),
    "drop": ("Dropout", 6),
    "prob": ("Softmax", 20),
}


@pytest.fixture(scope="module")
def weights():
    g = np.random.default_rng(0)
    return {
        n: [
            g.normal(0, 0.01 if n != "conv1" else 0.05, s).astype(np.float32),
            g.normal(0.1, 0.05, s[0]).astype(np.float32),
        ]
        for n, s in SHAPES.items()
    }


def write_caffemodel(path, weights, order, generation):
    net = MESSAGES["NetParameter"](name="AlexNet")
    for name in order:
        kind = next(k for k in TYPES if name.startswith(k))
        if generation == "current":
            layer = net.layer.add(name=name, type=TYPES[kind][0])
        else:
            layer = net.layers.add(name=name, type=TYPES[kind][1])
        for arr in weights.get(name, []):
            head = MESSAGES["BlobProto"]()
            if generation == "current":
                head.shape.dim.extend(arr.shape)
            else:  # legacy: 4-d num/channels/height/width, fc weights as 1 x 1 x out x in
                dims = (1,) * (4 - arr.ndim) + arr.shape
                head.num, head.channels, head.height, head.width = dims
            # `repeated float data = 5 [packed = true]` on the wire: tag, byte length, raw floats
            raw = arr.astype("<f4").tobytes()
            blob = head.SerializeToString() + bytes([5 << 3 | 2]) + varint(len(raw)) + raw
            layer.blobs.add().MergeFromString(blob)
    path.write_bytes(net.SerializeToString())
    return path


def caffemodel_bytes(blobs, order):
    """A .caffemodel written by hand from caffe.proto, fast at full size: NetParameter{layer=100:
    LayerParameter{name=1, type=2, blobs=7: BlobProto{shape=7: BlobShape{dim=1 packed},
    data=5 packed}}}. Layer kinds are read from the name prefix."""
    types = {
        "conv": "Convolution",
        "fc": "InnerProduct",
        "pool": "Pooling",
        "norm": "LRN",
        "relu": "ReLU",
        "drop": "Dropout",
        "data": "Input",
        "prob": "Softmax",
    }
    out = []
    for name in order:
        kind = next(v for k, v in types.items() if name.startswith(k))
        layer = field(1, name.encode()) + field(2, kind.encode())
        for arr in blobs.get(name, []):
            shape = field(1, b"".join(varint(d) for d in arr.shape))
            layer += field(7, field(7, shape) + field(5, arr.astype("<f4").tobytes()))
        out.append(field(100, layer))
    return b"".join(out)


def caffe_forward(x, w, pool_first, ceil=False):
    """Caffe's AlexNet in float64, written out here: groups 1,2,1,2,2; LRN k=1, alpha/n, n=5;
    pooled sizes rounded up (Caffe's PoolingLayer), which only matters away from 227."""

    def lrn(a):
        sq, out = a**2, torch.empty_like(a)
        for i in range(a.shape[1]):
            lo, hi = max(0, i - 2), min(a.shape[1] - 1, i + 2)
            out[:, i] = a[:, i] / (1 + 1e-4 / 5 * sq[:, lo : hi + 1].sum(1)) ** 0.75
        return out

    def t(n):
        return [torch.from_numpy(v).double() for v in w[n]]

    pool = lambda a: F.max_pool2d(a, 3, 2, ceil_mode=ceil)  # noqa: E731
    block = (lambda a: lrn(pool(a))) if pool_first else (lambda a: pool(lrn(a)))
    x = block(F.relu(F.conv2d(x, *t("conv1"), stride=4)))
    x = block(F.relu(F.conv2d(x, *t("conv2"), padding=2, groups=2)))
    x = F.relu(F.conv2d(x, *t("conv3"), padding=1))
    x = F.relu(F.conv2d(x, *t("conv4"), padding=1, groups=2))
    x = pool(F.relu(F.conv2d(x, *t("conv5"), padding=1, groups=2))).flatten(1)
    x = F.relu(F.linear(x, *t("fc6")))
    x = F.relu(F.linear(x, *t("fc7")))
    return F.linear(x, *t("fc8"))


@pytest.mark.parametrize("generation", ["current", "V1"])
@pytest.mark.parametrize("pool_first", [False, True])
def test_caffemodel_matches_caffe_semantics(tmp_path, weights, generation, pool_first):
    order = (
        CAFFENET_ORDER
        if pool_first
        else [
            n.replace("pool", "@").replace("norm", "pool").replace("@", "norm")
            if n[:4] in ("pool", "norm") and n[-1] in "12"
            else n
            for n in CAFFENET_ORDER
        ]
    )
    path = write_caffemodel(tmp_path / "w.caffemodel", weights, order, generation)
    model, card = load_pretrained(path)
    assert model.name == ("caffenet" if pool_first else "alexnet_caffe")
    assert (card.channel_order, card.pixel_scale, card.input_size, card.lrn) == ("BGR", 255.0, 227, "caffe")
    x = torch.randn(2, 3, 227, 227, dtype=torch.float64) * 60
    want = caffe_forward(x, weights, pool_first)
    with torch.no_grad():
        got = model.double()(x)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6 * want.abs().max().item())


def test_caffe_card_preprocessing_is_bgr_minus_mean():
    from alexnet.card import caffe_card

    img = torch.zeros(1, 3, 256, 256, dtype=torch.uint8)
    img[:, 0], img[:, 1], img[:, 2] = 200, 100, 50  # R, G, B
    x = caffe_card("caffenet", 1000, "t").pipeline().eval(img)
    assert x.shape == (1, 3, 227, 227)
    assert x[0, :, 0, 0].tolist() == pytest.approx([50 - 104.0, 100 - 116.7, 200 - 122.7], abs=1e-3)


def to_npy_dict(weights):
    """caffe-tensorflow's layout: conv HWIO, fc (in, out), fc6 rows in H x W x C order."""
    d = {}
    for n, (w, b) in weights.items():
        if w.ndim == 4:
            w = w.transpose(2, 3, 1, 0)
        elif n == "fc6":
            w = w.reshape(4096, 256, 6, 6).transpose(2, 3, 1, 0).reshape(9216, 4096)
        else:
            w = w.T
        d[n] = [w, b]
    return d


def test_caffe_tensorflow_npy(tmp_path, weights):
    path = tmp_path / "bvlc_alexnet.npy"
    np.save(path, to_npy_dict(weights), allow_pickle=True)
    model, card = load_pretrained(path)
    assert model.name == "alexnet_caffe" and card.channel_order == "BGR"
    x = torch.randn(1, 3, 227, 227, dtype=torch.float64) * 60
    with torch.no_grad():
        torch.testing.assert_close(model.double()(x), caffe_forward(x, weights, False), rtol=1e-6, atol=1e-7)


def test_npy_that_would_run_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"conv1": [Evil()]}, protocol=2)
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header += b" " * (63 - len(header)) + b"\n"
    path = tmp_path / "evil.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload)
    with pytest.raises(ValueError, match=r"refused or unreadable pickle .*(posix|os)\.system"):
        load_pretrained(path)
    assert not marker.exists()


def test_torchvision_state_dict_loads_strictly(tmp_path):
    ref = alexnet.create_model("alexnet_owt", seed=4)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(ref.state_dict(), path)
    model, card = load_pretrained(path)
    assert model.name == "alexnet_owt" and card.std == pytest.approx([0.229, 0.224, 0.225])
    x = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(model(x), ref.eval()(x))


def test_bad_files_give_one_clear_error(tmp_path, weights):
    good = write_caffemodel(tmp_path / "g.caffemodel", weights, CAFFENET_ORDER, "current").read_bytes()
    (tmp_path / "t.caffemodel").write_bytes(good[: len(good) // 3])
    with pytest.raises(ValueError, match="t.caffemodel: .*(truncated|holds)"):
        load_pretrained(tmp_path / "t.caffemodel")
    small = dict(weights, conv1=[weights["conv1"][0][:64], weights["conv1"][1][:64]])
    write_caffemodel(tmp_path / "m.caffemodel", small, CAFFENET_ORDER, "current")
    with pytest.raises(ValueError, match=r"conv1 weight has shape \(64, 3, 11, 11\)"):
        load_pretrained(tmp_path / "m.caffemodel")
    write_caffemodel(
        tmp_path / "x.caffemodel",
        {k: v for k, v in weights.items() if k != "fc7"},
        [n for n in CAFFENET_ORDER if n != "fc7"],
        "current",
    )
    with pytest.raises(
        ValueError, match=r"5 convolution and 3 inner-product layers, found .* 2 \(fc6, fc8\)"
    ):
        load_pretrained(tmp_path / "x.caffemodel")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="w.h5: not a readable Keras file"):
        load_pretrained(tmp_path / "w.h5")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="w.onnx: not a readable ONNX file"):
        load_pretrained(tmp_path / "w.onnx")
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, tmp_path / "p.pth")
    with pytest.raises(ValueError, match="does not fit alexnet_owt: missing"):
        load_pretrained(tmp_path / "p.pth")
    (tmp_path / "z.pth").write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match="z.pth: not a readable"):
        load_pretrained(tmp_path / "z.pth")


def test_convert_round_trips(tmp_path, weights):
    src = write_caffemodel(tmp_path / "c.caffemodel", weights, CAFFENET_ORDER, "V1")
    ref, _ = load_pretrained(src)
    x = torch.randn(2, 3, 227, 227) * 50
    with torch.no_grad():
        want = ref(x)
    for ext in (".safetensors", ".pt"):
        assert main(["convert", str(src), str(tmp_path / f"o{ext}")]) == 0
        model, card = load_pretrained(tmp_path / f"o{ext}")
        assert model.name == "caffenet" and card.channel_order == "BGR"
        with torch.no_grad():
            torch.testing.assert_close(model(x), want, rtol=0, atol=0)
        umask = os.umask(0)
        os.umask(umask)  # files people share get the usual permissions, not 0600
        assert (tmp_path / f"o{ext}").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.caffemodel", "o.pt", "o.safetensors"]


def torch_2_4_onnx_export(
    model, args, f, *, input_names=None, output_names=None, dynamic_axes=None, opset_version=None
):
    """torch.onnx.export as torch 2.4 has it: no `dynamo` argument, only the TorchScript exporter."""
    return REAL_ONNX_EXPORT(
        model,
        args,
        f,
        dynamo=False,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
        opset_version=opset_version,
    )


REAL_ONNX_EXPORT = torch.onnx.export


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript (torch 2.4)"])
def test_onnx_export_matches(tmp_path, monkeypatch, exporter):
    onnx = pytest.importorskip("onnx", reason="onnx is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    if exporter != "dynamo":  # the fallback for a torch whose export has no dynamo=True
        monkeypatch.setattr(torch.onnx, "export", torch_2_4_onnx_export)
    model = alexnet.create_model("caffenet", seed=0).eval()
    from alexnet.card import caffe_card

    out = save_pretrained(model, caffe_card("caffenet", 1000, "t"), tmp_path / "m.onnx")
    assert (
        json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["card"])["model"]
        == "caffenet"
    )
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"] and [
        o.name for o in session.get_outputs()
    ] == ["logits"]
    x = torch.randn(5, 3, 227, 227) * 50  # a batch size the export never saw
    got = session.run(["logits"], {"images": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    if exporter != "dynamo":  # TorchScript's exporter merges equal initializers (conv2/conv5's biases)
        with pytest.raises(ValueError, match=r"m.onnx: its graph does not name every parameter of caffenet"):
            load_pretrained(out)
        return
    back, card = load_pretrained(out)  # the round trip: the same weights and card
    assert card.model == "caffenet" and card.channel_order == "BGR" and len(card.classes) == 1000
    ref = model.state_dict()
    assert back.state_dict().keys() == ref.keys() and all(
        torch.equal(v, ref[k]) for k, v in back.state_dict().items()
    )


def test_convert_checks_the_onnx_export_and_reads_back_only_its_own(tmp_path, capsys):
    """convert says it checked the export in onnxruntime (and by how much it differs); the
    .onnx loads back exactly; a graph without our card is refused in one line."""
    onnx = pytest.importorskip("onnx", reason="onnx is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    net = alexnet.create_model("cifar_convnet", num_classes=4, seed=1).eval()
    src = save_pretrained(
        net,
        Card(model="cifar_convnet", num_classes=4, input_size=32, resize=None, classes=["a", "b", "c", "d"]),
        tmp_path / "c.pt",
    )
    assert main(["convert", str(src), str(tmp_path / "c.onnx")]) == 0
    out = capsys.readouterr().out
    diff = float(out.split("max |difference| ")[1].split()[0])
    assert "checked in onnxruntime on 3 random images" in out and 0 <= diff < 1e-3
    back, card = load_pretrained(tmp_path / "c.onnx")
    ref = net.state_dict()
    assert card.classes == ["a", "b", "c", "d"] and all(
        torch.equal(v, ref[k]) for k, v in back.state_dict().items()
    )
    proto = onnx.load(str(tmp_path / "c.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    assert main(["predict", str(tmp_path / "c.onnx"), "--weights", str(tmp_path / "foreign.onnx")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"alexnet predict: error: {tmp_path / 'foreign.onnx'}: an ONNX graph without a model card (not written by "
        "`alexnet convert`); run it with onnxruntime, or convert the weights it came from"
    )


def test_labels_files(tmp_path):
    (tmp_path / "synset_words.txt").write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
    )
    assert read_labels(tmp_path / "synset_words.txt") == ["tench", "goldfish"]
    (tmp_path / "idx.json").write_text(
        json.dumps({"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"]})
    )
    assert read_labels(tmp_path / "idx.json") == ["tench", "goldfish"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="imagenet_class_index.json"):
        read_labels(tmp_path / "bad.json")


def test_predict_cli_with_labels_and_plot(tmp_path, capsys):
    model = alexnet.create_model("alexnet_owt", num_classes=3, seed=0)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    (tmp_path / "labels.txt").write_text("n1 cat\nn2 dog\nn3 bird\n")
    for i in range(3):
        write_image(tmp_path / "imgs" / f"{i}.jpg", (300, 260), seed=i)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"nope")
    with pytest.warns(FutureWarning, match="^--labels is deprecated here: it is now --class-names"):
        assert (
            main(
                [
                    "predict",
                    str(tmp_path / "imgs"),
                    "--weights",
                    str(tmp_path / "w.pth"),
                    "--labels",
                    str(tmp_path / "labels.txt"),
                    "--topk",
                    "2",
                    "--crops",
                    "10",
                    "--plot",
                    str(tmp_path / "fig.png"),
                    "--quiet",
                ]
            )
            == 0
        )  # the old name of --class-names
    out = capsys.readouterr().out
    assert out.count(".jpg") == 3 and {"cat", "dog", "bird"} & set(out.split())
    from PIL import Image

    assert Image.open(tmp_path / "fig.png").size[0] > 3 * 180
    assert main(["predict", str(tmp_path / "nothing"), "--weights", str(tmp_path / "w.pth")]) == 2
    (tmp_path / "imgs" / "broken2.jpg").write_bytes(b"nope")  # every skipped file is named, one line each
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexnet",
            "predict",
            str(tmp_path / "imgs"),
            "--weights",
            str(tmp_path / "w.pth"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )  # pytest keeps
    assert r.returncode == 0  # warnings in-process
    err = r.stderr.strip().splitlines()
    assert [line.split(":", 2)[:2] for line in err] == [["alexnet predict", " warning"]] * 2, err
    assert (
        "broken.jpg: not a readable image (not an image format Pillow knows)" in err[0]
        and "broken2.jpg" in err[1]
    )
    only_bad = [str(tmp_path / "imgs" / "broken.jpg"), "--weights", str(tmp_path / "w.pth")]
    assert main(["predict", *only_bad]) == 2  # nothing readable: bad input, not a silent success
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("alexnet predict: error: none of the 1 image(s) in")
    )
    assert main(["predict", *only_bad, "--debug"]) == 2  # the traceback too, the same status
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1].startswith(
        "alexnet predict: error: none of the 1 image(s)"
    )


# ---- the checkpoints people actually have --------------------------------------------------------
def test_pytorch_examples_checkpoint_and_wrapper_prefixes(tmp_path):
    """pytorch/examples imagenet/main.py wraps AlexNet's features in DataParallel and saves
    {epoch, arch, state_dict, best_acc1, optimizer, scheduler} to model_best.pth.tar."""
    ref = alexnet.create_model("alexnet_owt", seed=1).eval()
    net = alexnet.create_model("alexnet_owt", seed=1)
    net.features = torch.nn.DataParallel(net.features)  # what main.py does for alexnet and vgg
    opt = torch.optim.SGD(net.parameters(), 0.1, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    net(torch.randn(2, 3, 224, 224)).sum().backward()
    opt.step(), sched.step()
    with torch.no_grad():  # the state after the step is the one to compare against
        for p_ref, p in zip(ref.parameters(), net.parameters()):
            p_ref.copy_(p)
    ckpt = {
        "epoch": 3,
        "arch": "alexnet",
        "state_dict": net.state_dict(),
        "best_acc1": torch.tensor([12.5]),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
    }
    assert next(iter(ckpt["state_dict"])) == "features.module.0.weight"
    torch.save(ckpt, tmp_path / "model_best.pth.tar")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want = ref(x)
    model, card = load_pretrained(tmp_path / "model_best.pth.tar")
    assert model.name == "alexnet_owt" and card.classes[0] == "tench"  # 1000 classes: ImageNet's names
    with torch.no_grad():
        assert (model(x) - want).abs().max() < 1e-5
    torch.save({"arch": "resnet18", "state_dict": {"conv1.weight": torch.zeros(1)}}, tmp_path / "r.pth.tar")
    with pytest.raises(ValueError, match="a checkpoint of 'resnet18', not of an AlexNet"):
        load_pretrained(tmp_path / "r.pth.tar")


def test_ddp_and_compile_prefixes(tmp_path):
    """DistributedDataParallel's state dict (a real one, from a one-process gloo group) loads equal
    to the plain one; torch.compile's `_orig_mod.` (its OptimizedModule's layout) goes the same way."""
    import torch.distributed as dist

    from alexnet.interop.pretrained import unwrap_keys

    ref = alexnet.create_model("alexnet_owt", seed=2).eval()
    compiled = {f"_orig_mod.{k}": v for k, v in ref.state_dict().items()}  # torch.compile(ref).state_dict()
    assert list(unwrap_keys(compiled)) == list(ref.state_dict())
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        state = torch.nn.parallel.DistributedDataParallel(ref).state_dict()
    finally:
        dist.destroy_process_group()
    assert next(iter(state)).startswith("module.features.")
    torch.save(state, tmp_path / "ddp.pth")
    model, _ = load_pretrained(tmp_path / "ddp.pth")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < 1e-5


def test_caffe_tensorflow_dict_of_dicts(tmp_path, weights):
    """Later caffe-tensorflow writes {layer: {"weights": W, "biases": b}} (Guerzhoy's file: lists,
    whose load test_caffe_tensorflow_npy checks against Caffe's forward): the same state results."""
    dicts = {n: {"weights": w, "biases": b} for n, (w, b) in to_npy_dict(weights).items()}
    np.save(tmp_path / "dicts.npy", dicts, allow_pickle=True)
    model, card = load_pretrained(tmp_path / "dicts.npy")
    assert (model.name, card.channel_order) == ("alexnet_caffe", "BGR")
    state = model.state_dict()
    for name, (w, b) in weights.items():  # the reference: Caffe's own arrays
        key = f"{'features' if name.startswith('conv') else 'classifier'}.{name}"
        assert np.abs(state[key + ".weight"].numpy() - w).max() < 1e-5, name
        assert np.abs(state[key + ".bias"].numpy() - b).max() < 1e-5, name
    np.save(tmp_path / "odd.npy", {**dicts, "conv1": {"kernel": 1}}, allow_pickle=True)
    with pytest.raises(ValueError, match="layer conv1 holds \\['kernel'\\], expected 'weights' and 'biases'"):
        load_pretrained(tmp_path / "odd.npy")


def test_renamed_last_layer_and_caffe_mean(tmp_path, weights):
    """A fine-tuned net (Caffe's Flickr-style fc8_flickr, R-CNN's fc-rcnn) is recognised by its
    structure and keeps its own classes; Caffe's mean image rides along in the card."""
    g = np.random.default_rng(3)
    tuned = dict(weights, fc8=[g.normal(0, 0.01, (20, 4096)).astype(np.float32), np.zeros(20, np.float32)])
    renamed = {("fc8_flickr" if k == "fc8" else k): v for k, v in tuned.items()}
    (tmp_path / "flickr.caffemodel").write_bytes(
        caffemodel_bytes(renamed, [("fc8_flickr" if n == "fc8" else n) for n in CAFFENET_ORDER])
    )
    mean = g.uniform(0, 255, (3, 256, 256)).astype(np.float32)  # BGR, as Caffe's compute_image_mean
    legacy = b"".join(varint(f << 3) + varint(v) for f, v in ((1, 1), (2, 3), (3, 256), (4, 256)))
    (tmp_path / "imagenet_mean.binaryproto").write_bytes(legacy + field(5, mean.astype("<f4").tobytes()))
    model, card = load_pretrained(tmp_path / "flickr.caffemodel", mean=tmp_path / "imagenet_mean.binaryproto")
    assert (model.name, card.num_classes, card.classes) == ("caffenet", 20, [])
    state = model.state_dict()
    for name, (w, b) in tuned.items():  # the reference: the arrays as written
        key = f"{'features' if name.startswith('conv') else 'classifier'}.{name}"
        assert np.abs(state[key + ".weight"].numpy() - w.reshape(state[key + ".weight"].shape)).max() < 1e-5
        assert np.abs(state[key + ".bias"].numpy() - b).max() < 1e-5
    assert np.abs(np.asarray(card.mean)[::-1] * 255 - mean).max() < 1e-3  # stored RGB in [0, 1]
    # caffe-tensorflow's R-CNN: "fc-rcnn" with 200 classes, found as the one unknown 2-d layer
    npy = {("fc-rcnn" if k == "fc8" else k): v for k, v in to_npy_dict(tuned).items()}
    npy["fc-rcnn"] = [npy["fc-rcnn"][0][:, :15], npy["fc-rcnn"][1][:15]]
    np.save(tmp_path / "rcnn.npy", npy, allow_pickle=True)
    rcnn, card = load_pretrained(tmp_path / "rcnn.npy")
    assert card.num_classes == 15 and torch.equal(
        rcnn.classifier.fc8.weight, model.classifier.fc8.weight[:15]
    )


def test_caffe_mean_image_is_cropped_where_the_image_is(tmp_path):
    """Caffe's DataTransformer: out = img[c, h_off + h, w_off + w] - mean[c, h_off + h, w_off + w],
    written mirrored when mirroring; centre crop offset (256 - 227) / 2 = 14."""
    from alexnet.card import caffe_card
    from alexnet.interop.pretrained import with_mean_image

    g = np.random.default_rng(4)
    mean = g.uniform(0, 255, (3, 256, 256))
    np.save(tmp_path / "ilsvrc_2012_mean.npy", mean)  # a plain float64 array, like Caffe's
    card = with_mean_image(caffe_card("caffenet", 1000, "t"), tmp_path / "ilsvrc_2012_mean.npy")
    rgb = torch.from_numpy(g.integers(0, 256, (1, 3, 256, 256), dtype=np.uint8))
    bgr = rgb.flip(1).double().numpy()[0]
    pipe = card.pipeline()
    centre = pipe.eval(rgb)[0].double().numpy()
    np.testing.assert_allclose(centre, (bgr - mean)[:, 14:241, 14:241], atol=2e-3)
    ten = pipe.eval(rgb, "10")[0].double().numpy()  # TEN_CROP_ORDER: index 5 = top-left mirrored
    np.testing.assert_allclose(ten[5], (bgr - mean)[:, :227, :227][:, :, ::-1], atol=2e-3)
    np.save(tmp_path / "small.npy", mean[:, :200, :200])
    with pytest.raises(
        ValueError, match="a 200x200 mean image, but these weights see images stored at 256x256"
    ):
        with_mean_image(caffe_card("caffenet", 1000, "t"), tmp_path / "small.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy: not a plain .npy array"):
        with_mean_image(caffe_card("caffenet", 1000, "t"), tmp_path / "obj.npy")


def test_caffe_nets_pool_with_ceil_rounding(weights, tmp_path):
    """Caffe rounds pooled sizes up: at 224, conv1's 54x54 pools to 27 (torch's floor: 26) and the
    net still ends at 6x6; at 231 and above Caffe's own sizes no longer fit fc6: refused."""
    (tmp_path / "c.caffemodel").write_bytes(caffemodel_bytes(weights, CAFFENET_ORDER))
    model, _ = load_pretrained(tmp_path / "c.caffemodel")
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64) * 60
    want = caffe_forward(x, weights, pool_first=True, ceil=True)
    with torch.no_grad():
        got = model.double()(x)
    assert (got - want).abs().max() < 1e-6 * want.abs().max()
    with pytest.raises(
        ValueError, match=r"caffenet expects 227x227 input \(sides 199..230 work\), got \(231, 231\)"
    ):
        model(torch.zeros(1, 3, 231, 231, dtype=torch.float64))


def test_wordnet_ids_get_imagenet_names_and_a_full_synset_file_picks_by_id(tmp_path):
    from alexnet.card import imagenet_categories, names_for

    card = Card(
        model="cifar_convnet", num_classes=2, input_size=32, resize=None, classes=["n01443537", "n01440764"]
    )
    assert [card.class_name(i) for i in range(2)] == ["goldfish", "tench"]  # folders named by WordNet id
    assert card.class_index("n01440764") == 1 and card.class_index("n99999999") is None
    from alexnet.evaluation.predict import true_label  # for Fig. 4's red bar: by folder, or by file name

    assert (
        true_label("d/n01440764/a.jpg", card) == "tench"
        and true_label("n01443537_123_x.jpg", card) == "goldfish"
    )
    assert true_label("d/cat/a.jpg", card) is None
    synsets = tmp_path / "synset_words.txt"  # the full 1000-line file, in ImageNet's order
    synsets.write_text("".join(f"{w} {n}, other names\n" for w, n in imagenet_categories()))
    assert names_for(card, synsets) == ["goldfish", "tench"]  # picked by id, not refused for its length
    numbered = Card(model="cifar_convnet", num_classes=2, input_size=32, resize=None, classes=["cat", "dog"])
    with pytest.raises(
        ValueError, match=r"1000 names for a 2-class network \(its classes are not WordNet ids"
    ):
        names_for(numbered, synsets)
    imagenet = Card(
        model="alexnet", num_classes=1000, input_size=227, classes=[n for _, n in imagenet_categories()]
    )
    assert imagenet.class_index("n01440764") == 0  # ImageNet's names: found by id too
