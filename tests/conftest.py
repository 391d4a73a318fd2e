import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Real data shared beside the checkout ($ALEXNET_TEST_DATA, default ../shared/data)."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    root = Path(os.environ.get("ALEXNET_TEST_DATA", default))
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent (set ALEXNET_TEST_DATA)")
    return root
