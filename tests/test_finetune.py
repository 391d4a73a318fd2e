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
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 20), nn.ReLU(),
                        nn.Linear(20, 5))
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
