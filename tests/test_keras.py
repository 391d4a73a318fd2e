"""alexnet_bn against the Keras BatchNorm AlexNet itself: Keras 3 (torch backend, no TensorFlow)
builds the published Sequential, writes it in all three of its file formats, and our loads of
those files must give Keras' own logits to 1e-5."""

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="keras is not installed (pip install keras h5py)")
pytest.importorskip("h5py")
if keras.backend.backend() != "torch":
    pytest.skip("these tests run Keras on its torch backend", allow_module_level=True)

import alexnet  # noqa: E402
from alexnet.interop.pretrained import load_pretrained  # noqa: E402
from alexnet.models.variants import TFSameConv2d  # noqa: E402

CLASSES = 10
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning",  # Keras' own numpy 2 notices
    "ignore:The structure of `inputs`:UserWarning",
)


def keras_alexnet_bn(side=227, classes=CLASSES, reg=2e-4):
    """The listing of issue 12: every kernel with l2(reg); conv5 has no ReLU and no BN."""
    from keras import layers, regularizers

    def conv(n, k, **kw):
        return layers.Conv2D(n, k, padding="same", kernel_regularizer=regularizers.l2(reg), **kw)

    def dense(n, **kw):
        return layers.Dense(n, kernel_regularizer=regularizers.l2(reg), **kw)

    relu, bn, drop = (
        (lambda: layers.Activation("relu")),
        layers.BatchNormalization,
        (lambda: layers.Dropout(0.25)),
    )
    return keras.Sequential(
        [
            keras.Input((side, side, 3)),
            conv(96, 11, strides=4),
            relu(),
            bn(),
            layers.MaxPooling2D(3, 2),
            drop(),
            conv(256, 5),
            relu(),
            bn(),
            layers.MaxPooling2D(3, 2),
            drop(),
            conv(384, 3),
            relu(),
            bn(),
            conv(384, 3),
            relu(),
            bn(),
            conv(256, 3),
            layers.MaxPooling2D(3, 2),
            drop(),
            layers.Flatten(),
            dense(4096),
            relu(),
            bn(),
            drop(),
            dense(4096),
            relu(),
            bn(),
            drop(),
            dense(classes),
            layers.Activation("softmax"),
        ]
    )


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras_alexnet_bn()
    rng = np.random.default_rng(0)
    for layer in model.layers:  # BN statistics and affine far from their defaults, so that a
        if isinstance(layer, keras.layers.BatchNormalization):  # swapped array cannot hide
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),
                    rng.normal(0, 0.2, n),
                    rng.normal(0, 0.5, n),
                    rng.uniform(0.2, 2.0, n),
                ]
            )
        elif layer.weights:
            w, b = layer.get_weights()
            layer.set_weights([w, rng.normal(0, 0.05, b.shape)])
    x = rng.uniform(-1, 1, (2, 227, 227, 3)).astype(np.float32)
    logits_model = keras.Model(model.inputs, model.layers[-2].output)  # before the softmax
    want = np.asarray(logits_model(x, training=False).detach().cpu())
    probs = np.asarray(model(x, training=False).detach().cpu())
    out = tmp_path_factory.mktemp("keras")
    paths = {"weights.h5": out / "bn.weights.h5", "h5": out / "bn.h5", "keras": out / "bn.keras"}
    model.save_weights(paths["weights.h5"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 is a legacy format": that is why we read it
        model.save(paths["h5"])
    model.save(paths["keras"])
    return paths, x, want, probs


@pytest.mark.parametrize("fmt", ["weights.h5", "h5", "keras"])
def test_keras_files_give_keras_logits(keras_files, fmt):
    paths, x, want, probs = keras_files
    net, card = load_pretrained(paths[fmt])
    assert (card.model, card.num_classes, card.model_kw) == ("alexnet_bn", CLASSES, {"conv5_relu": False})
    assert not net.training
    with torch.no_grad():
        got = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    assert np.abs(got - want).max() < 1e-5 * max(1.0, np.abs(want).max())
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(got), 1).numpy(), probs, atol=1e-6)


def test_architecture_is_the_keras_listing(keras_files):
    ours = alexnet.create_model("alexnet_bn", num_classes=CLASSES)
    theirs = keras_alexnet_bn()
    assert sum(p.numel() for p in ours.parameters()) == theirs.count_params() - sum(
        int(np.prod(w.shape)) for w in theirs.non_trainable_weights
    )  # moving stats are buffers here
    names = [n for n, _ in ours.features.named_children()]
    assert "relu5" not in names and "bn5" not in names and names[names.index("conv5") + 1] == "pool5"
    bns = [m for m in ours.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 6 and all((m.eps, m.momentum) == (1e-3, 0.01) for m in bns)
    old = alexnet.create_model("alexnet_bn", conv5_relu=True)
    assert [n for n, _ in old.features.named_children()][-5:] == ["conv5", "relu5", "bn5", "pool5", "drop5"]
    # Glorot-uniform bound sqrt(6 / (fan_in + fan_out)), zero biases: conv1 fans 363 and 11616
    w = ours.features.conv1.weight
    assert w.abs().max() <= (6 / (363 + 11616)) ** 0.5 and w.std() > 0.9 * (2 / (363 + 11616)) ** 0.5
    assert all(
        m.bias.abs().max() == 0 for m in ours.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    )


@pytest.mark.parametrize("side", [224, 226, 227, 230])
def test_conv1_pads_like_tensorflow_same(side):
    """At 227 'same' pads conv1 4+4; at 224 it pads 3 (top/left) + 4 (bottom/right)."""
    layer = keras.layers.Conv2D(8, 11, strides=4, padding="same")
    x = np.random.default_rng(side).normal(size=(1, side, side, 3)).astype(np.float32)
    want = np.asarray(layer(x).detach().cpu())
    ours = TFSameConv2d(3, 8, 11, 4, static_pad=4)
    k, b = layer.get_weights()
    with torch.no_grad():
        ours.weight.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1)))
        ours.bias.copy_(torch.from_numpy(b))
        got = ours(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert got.shape == want.shape == (1, -(-side // 4), -(-side // 4), 8)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_input_sides_follow_same_padding():
    m = alexnet.create_model("alexnet_bn").eval()
    assert m._valid_sizes == (217, 248)  # ceil(n/4) in 55..62 pools to 6x6
    with torch.no_grad():
        assert m(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    with pytest.raises(ValueError, match="sides 217..248"):
        m(torch.zeros(1, 3, 249, 249))


def test_keras_bn_preset_decays_kernels_only():
    from alexnet.training.config import build_config
    from alexnet.training.optim import param_groups

    cfg = build_config("keras-bn", data="x")
    assert (cfg.model, cfg.weight_decay, cfg.bias_decay) == ("alexnet_bn", 4e-4, False)  # 2 x l2(2e-4)
    model = alexnet.create_model(cfg.model)
    decay = {id(p): g["weight_decay"] for g in param_groups(model, cfg) for p in g["params"]}
    for name, p in model.named_parameters():
        assert decay[id(p)] == (4e-4 if p.dim() > 1 else 0.0), name  # BN gamma/beta and biases: none


def test_broken_keras_files_are_refused(tmp_path, keras_files):
    import h5py

    paths, *_ = keras_files
    with h5py.File(tmp_path / "few.weights.h5", "w") as f:
        f.create_dataset("layers/conv2d/vars/0", data=np.zeros((11, 11, 3, 96), np.float32))
        f.create_dataset("layers/conv2d/vars/1", data=np.zeros(96, np.float32))
    with pytest.raises(ValueError, match=r"1 Conv2D, 0 Dense and 0 BatchNormalization"):
        load_pretrained(tmp_path / "few.weights.h5")
    (tmp_path / "bad.keras").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="bad.keras: not a readable Keras file"):
        load_pretrained(tmp_path / "bad.keras")


def test_a_converted_h5_carries_no_bytes_from_outside_the_file(tmp_path, keras_files, capsys):
    """Issue 18: the whole Keras file, one BatchNormalization beta moved into an outside file by
    HDF5 external storage (the file's own bytes are the same but for that dataset). Followed, it
    converted with rc 0 and the outside bytes in the weights written; now it is refused, naming
    the dataset, and nothing is written. The unmodified copy still converts."""
    import shutil

    import h5py

    from alexnet.cli import main

    paths, *_ = keras_files
    honest, hostile = tmp_path / "honest.weights.h5", tmp_path / "hostile.weights.h5"
    shutil.copy(paths["weights.h5"], honest)
    shutil.copy(paths["weights.h5"], hostile)
    with h5py.File(hostile, "r+") as f:
        beta = next(n for n in _datasets(f) if n.endswith("batch_normalization/vars/1"))
        n = f[beta].shape[0]
        secret = tmp_path / "secret.bin"
        secret.write_bytes(np.full(n, 7.0, np.float32).tobytes())  # an outside file's bytes
        del f[beta]
        f.create_dataset(beta, shape=(n,), dtype="<f4", external=[(str(secret), 0, 4 * n)])
    out = tmp_path / "out.safetensors"
    assert main(["convert", str(hostile), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{beta} is a dataset stored in an external file ({secret})" in err, err
    assert not out.exists()
    assert main(["convert", str(honest), str(out)]) == 0 and out.exists()


def _datasets(f) -> list[str]:
    names = []
    f.visititems(lambda name, obj: names.append(name) if hasattr(obj, "shape") else None)
    return names
