"""What the explore tests share: a paper-net weights file, a folder of images, `alexnet predict`."""

from __future__ import annotations

import contextlib
import io
import json
import re
import urllib.request

import torch

from alexnet import create_model, save_pretrained
from alexnet.card import Card
from alexnet.cli import main
from conftest import write_image


def paper_weights(path):
    """The paper's two-tower network (seeded, untrained) as a .safetensors file with its card:
    1000 classes, so ImageNet's names."""
    torch.manual_seed(0)
    model = create_model("alexnet")
    with torch.no_grad():  # a peaked softmax: the top-5 differ clearly (untrained logits are all alike)
        model.classifier.fc8.weight.mul_(30)
    card = Card(
        model="alexnet", num_classes=1000, input_size=227, lrn="paper", model_kw={"groups": 2}, source="test"
    )
    return save_pretrained(model, card, path)


def image_folder(root, n=6):
    for i in range(n):
        write_image(
            root / ("sub" if i % 2 else "") / f"img{i}.{'png' if i % 3 == 0 else 'jpg'}",
            (260 + 10 * i, 240),
            seed=100 + i,
        )
    return root


def predict_cli(image, weights) -> list[tuple[str, str]]:
    """`alexnet predict IMAGE --weights W` as printed: [(name, "12.34%")] of its top-5."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["predict", str(image), "--weights", str(weights), "--quiet"]) == 0
    rows = [re.match(r"\s+([\d.]+%)\s+(.*)$", line) for line in out.getvalue().splitlines()[1:]]
    return [(m.group(2), m.group(1)) for m in rows]


def post(url, body=b""):
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=60) as r:
        return json.loads(r.read())
