import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# Triton reads TRITON_INTERPRET when it is first imported, and other tests (Keras' torch backend,
# torch.compile) may import it first: without a GPU, its kernels run in the interpreter throughout.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Real data shared beside the checkout ($ALEXNET_TEST_DATA, default ../shared/data)."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    root = Path(os.environ.get("ALEXNET_TEST_DATA", default))
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent (set ALEXNET_TEST_DATA)")
    return root


def write_image(path, size=(40, 30), mode="RGB", seed=0, fmt=None):
    """A random image file of the given size and mode (JPEG/PNG by extension)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4}[mode] if mode != "P" else 1
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    img = Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode if mode != "P" else "L")
    if mode == "P":
        img = img.convert("P")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)
    return path


@pytest.fixture
def image_folder(tmp_path):
    """root/train/<class>/*.jpg and root/val/<class>/*.png: 3 classes, 4 + 2 images each."""
    root = tmp_path / "ds"
    for split, n, ext in (("train", 4, "jpg"), ("val", 2, "png")):
        for c, cls in enumerate(["cat", "ant", "bee"]):
            for i in range(n):
                write_image(root / split / cls / f"{i}.{ext}", (48 + 8 * i, 40), seed=c * 10 + i)
    return root


@pytest.fixture(scope="session")
def paper_net_file(tmp_path_factory):
    """The paper's two-tower network (seeded, untrained) as a .safetensors file with its card, made
    once for the session (`alexnet explore`'s tests and its browser test share it)."""
    from explore_helpers import paper_weights  # here: explore_helpers imports this module

    return paper_weights(tmp_path_factory.mktemp("paper-net") / "alexnet.safetensors")
