"""Model parallel towers (§3.2) on two devices (both `cpu` here): the one-device function."""

import pytest
import torch

import alexnet
from alexnet.models.towers import TwoTowers
from alexnet.training import Trainer, build_config
from alexnet.training.checkpoint import load_checkpoint


@pytest.mark.parametrize("name", ["alexnet", "caffenet"])
def test_outputs_and_gradients_equal_the_one_device_model(name):
    m = alexnet.create_model(name, seed=0, dropout=0.0)
    t = TwoTowers(m, ["cpu", "cpu"])
    x = torch.randn(2, 3, 227, 227) * 40
    a, b = m(x), t(x)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * a.abs().max().item())
    a.square().sum().backward()
    b.square().sum().backward()
    full = m.features.conv4.weight.grad  # (384, 192, 3, 3): the two towers' kernels stacked
    halves = torch.cat([t.towers[0]["conv4"].weight.grad, t.towers[1]["conv4"].weight.grad])
    torch.testing.assert_close(halves, full, rtol=1e-4, atol=1e-4 * full.abs().max().item())
    merged = t.merged_state_dict()
    assert merged.keys() == m.state_dict().keys()
    other = alexnet.create_model(name, seed=1).state_dict()
    t.load_merged_state_dict(other)
    assert all(torch.equal(t.merged_state_dict()[k], other[k]) for k in other)


def test_towers_need_the_two_tower_net():
    with pytest.raises(ValueError, match="groups=2"):
        TwoTowers(alexnet.create_model("alexnet", groups=1), ["cpu", "cpu"])
    with pytest.raises(ValueError, match="exactly two devices"):
        TwoTowers(alexnet.create_model("alexnet"), ["cpu"])


def test_training_with_towers_on(image_folder, tmp_path):
    cfg = build_config(
        None,
        None,
        model="alexnet",
        data=str(image_folder),
        resize=230,
        batch_size=4,
        epochs=1,
        workers=0,
        run_dir=str(tmp_path / "run"),
        mean="channel",
        pca_std=0.0,
        towers_on="cpu,cpu",
        limit_batches=2,
    )
    Trainer(cfg, progress=False).fit()
    ck = load_checkpoint(tmp_path / "run")
    assert ck["step"] == 2 and ck["model"]["features.conv2.weight"].shape == (256, 48, 5, 5)
