"""Fine-tuning from weights we trained: the defaults learn on another folder; warnings when the
start cannot learn (a loss far above ln(classes), a layer of dead ReLUs)."""

import csv
import math

import numpy as np
import pytest
import torch
from torch import nn

from alexnet.cli import main
from alexnet.training.checks import DEAD, dead_units, loss_warning


def test_loss_warning_by_hand():
    assert loss_warning(math.log(10) * 1.9, 10) is None  # 4.37 <= max(2 ln 10, ln 10 + 2) = 4.61
    assert "far above ln(10) = 2.30" in loss_warning(171.0, 10)
    assert loss_warning(2.6, 2) is None and loss_warning(2.8, 2)  # two classes: ln 2 + 2 = 2.69
    assert loss_warning(float("nan"), 10)


def test_dead_units_counts_units_silent_for_every_image():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 20), nn.ReLU(), nn.Linear(20, 5)
    )
    x = torch.randn(6, 3, 6, 6)
    dead, logits = dead_units(net, x)
    assert dead == {} and logits.shape == (6, 5)
    with torch.no_grad():
        net[3].bias[:19] = -1e4  # 19 of fc2's 20 units can never fire; conv1 stays alive
    dead, _ = dead_units(net, x)
    assert dead == {"fc2": (19, 20)}
    with torch.no_grad():
        net[3].bias[:17] = -1e4
        net[3].bias[17:] = 1e4
    assert dead_units(net, x)[0] == {}  # 17 of 20 is under DEAD
    assert 17 / 20 < DEAD <= 19 / 20


def colour_folder(root, classes, n_train=12, n_val=6, seed=0):
    """<split>/<class>/*.png of 32x32 noise around one colour per class: learnable in a few steps."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, rgb in classes.items():
        for split, n in (("train", n_train), ("val", n_val)):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = np.clip(np.array(rgb) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / name / f"{i}.png")
    return root


def test_the_default_finetune_learns_on_another_folder(tmp_path, capsys):
    """A net we trained on three colours, fine-tuned by `alexnet finetune` with the defaults (no
    lr, layers or multipliers given) on three other colours: it learns them. The defaults are
    printed at the start, and are what the run used."""
    from alexnet.training import Trainer, build_config
    from alexnet.training.checkpoint import load_checkpoint
    from alexnet.training.recipes import FINETUNE

    a = colour_folder(tmp_path / "A", {"red": (220, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 220)})
    b = colour_folder(
        tmp_path / "B", {"yellow": (220, 220, 40), "cyan": (40, 220, 220), "magenta": (220, 40, 220)}, seed=1
    )
    common = dict(model="cifar_convnet", epochs=3, batch_size=12, workers=0, seed=0)
    Trainer(
        build_config(None, None, data=str(a), run_dir=str(tmp_path / "pre"), **common), progress=False
    ).fit()
    weights = str(tmp_path / "pre" / "best.pt")
    capsys.readouterr()
    assert (
        main(
            [
                "finetune",
                "--weights",
                weights,
                "--data",
                str(b),
                "--epochs",
                "3",
                "--batch-size",
                "12",
                "--workers",
                "0",
                "--run-dir",
                str(tmp_path / "ft"),
                "--quiet",
            ]
        )
        == 0
    )
    printed = [line.strip() for line in capsys.readouterr().err.splitlines()]  # (with the settings)
    recipe = build_config(None, None, data=str(b), **common)
    lr, mult = recipe.lr * FINETUNE["lr_factor"], {"fc4": FINETUNE["head_lr_mult"]}
    said = next(line for line in printed if line.startswith("fine-tuning defaults"))
    assert said.endswith(f": lr={lr:g} train_layers={FINETUNE['train_layers']} lr_mult={mult}"), said
    cfg = load_checkpoint(tmp_path / "ft")["config"]
    assert (cfg["lr"], cfg["lr_mult"], cfg["train_layers"]) == (
        pytest.approx(lr),
        mult,
        FINETUNE["train_layers"],
    )
    rows = list(csv.DictReader(open(tmp_path / "ft" / "metrics.csv")))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert min(float(r["val_top1_err"]) for r in rows) <= 1 / 3  # chance: 2/3
    given = build_config(None, None, data=str(b), init_from=weights, lr=0.3, lr_mult={"fc4": 2.0}, **common)
    assert (given.lr, given.lr_mult) == (0.3, {"fc4": 2.0})  # what is given is kept


def test_a_start_that_cannot_learn_is_one_warning_line(tmp_path):
    """Weights whose conv3 never fires (damaged, or fed other preprocessing than they expect)."""
    import alexnet
    from alexnet.card import Card
    from alexnet.interop.pretrained import save_pretrained

    net = alexnet.create_model("cifar_convnet", num_classes=3, seed=0)
    with torch.no_grad():
        net.features.conv3.bias.fill_(-1e4)
    w = save_pretrained(
        net,
        Card(model="cifar_convnet", num_classes=3, input_size=32, resize=None, pixel_scale=1.0),
        tmp_path / "w.pt",
    )
    b = colour_folder(tmp_path / "B", {"yellow": (220, 220, 40), "cyan": (40, 220, 220)}, n_train=4, n_val=2)
    with pytest.warns(UserWarning) as caught:
        assert (
            main(
                [
                    "finetune",
                    "--weights",
                    str(w),
                    "--data",
                    str(b),
                    "--epochs",
                    "1",
                    "--batch-size",
                    "4",
                    "--workers",
                    "0",
                    "--run-dir",
                    str(tmp_path / "ft"),
                    "--quiet",
                ]
            )
            == 0
        )
    assert [str(w.message) for w in caught if "dead" in str(w.message)] == [
        "conv3: 64 of its 64 units output 0 for every image of the first batch (dead ReLUs); the network will "
        "not learn through them: check the weights and their preprocessing, or lower --lr"
    ]
