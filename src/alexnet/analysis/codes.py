"""Short binary codes for fast retrieval (paper §6.1: "training an auto-encoder to compress
these vectors to short binary codes"): a deep autoencoder whose logistic code layer is read as
bits at 0.5; noise added to the code layer's input while training pushes the units towards 0
and 1 (Krizhevsky & Hinton, 2011). Codes are stored packed, 8 bits a byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..errors import BadInput
from ..fileio import check_digest, save_pt
from ..untrusted import torch_load

# what a codes file may claim before anything is built from it: fc features are 4096-d (pool5
# 9216; a 100,000-class logit vector is the most the model zoo makes)
MAX_DIM, MAX_BITS, MAX_HIDDEN = 1_000_000, 1 << 16, 1 << 16


class CodeAutoencoder(nn.Module):
    def __init__(self, dim: int, bits: int, hidden: int = 1024, noise: float = 4.0):
        super().__init__()
        self.dim, self.bits, self.hidden, self.noise = dim, bits, hidden, noise
        self.encoder = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden // 2),
            nn.ReLU(),
            nn.Linear(hidden // 2, bits),
        )
        self.decoder = nn.Sequential(
            nn.Linear(bits, hidden // 2),
            nn.ReLU(),
            nn.Linear(hidden // 2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def code_probs(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.encoder((x - self.mean) / self.std)
        if self.training:
            logits = logits + self.noise * torch.randn_like(logits)
        return torch.sigmoid(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.code_probs(x))

    @torch.no_grad()
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Packed codes: (N, ceil(bits/8)) uint8, bit = code unit > 0.5."""
        self.eval()
        probs = self.code_probs(torch.from_numpy(np.asarray(x, dtype=np.float32)))
        return np.packbits((probs > 0.5).numpy(), axis=1)


def train_codes(
    features: np.ndarray,
    bits: int = 256,
    epochs: int = 30,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> CodeAutoencoder:
    if bits < 1:
        raise ValueError(f"--bits must be >= 1, got {bits}")
    if len(features) < 2:
        raise ValueError("the index holds fewer than 2 feature vectors: nothing to learn codes from")
    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    model = CodeAutoencoder(x.shape[1], bits)
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp(min=1e-6))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    target = (x - model.mean) / model.std
    g = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc="codes", unit="epoch", disable=not progress):
        model.train()
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            loss = ((model(x[idx]) - target[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def save_codes(model: CodeAutoencoder, path: str | Path) -> None:
    # atomic, with the SHA-256 that load_codes checks
    save_pt({"state": model.state_dict(), "dim": model.dim, "bits": model.bits, "hidden": model.hidden}, path)


def load_codes(path: str | Path) -> CodeAutoencoder:
    """A codes file; its sizes are checked, and its tensors against them, before building."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"--codes {path}: no such codes file (make one with `alexnet codes train`)")
    what = "codes file from `alexnet codes train`"
    check_digest(Path(path), what, optional=True)  # a flipped byte is refused; older files load
    d = torch_load(path, what, f"--codes {path}")
    sizes = {"dim": MAX_DIM, "bits": MAX_BITS, "hidden": MAX_HIDDEN}
    if (
        not isinstance(d, dict)
        or not isinstance(d.get("state"), dict)
        or any(
            type(d.get(k)) is not int or not (2 if k == "hidden" else 1) <= d[k] <= hi
            for k, hi in sizes.items()
        )
    ):
        raise BadInput(
            f"--codes {path}: not a {what} (expected state, dim, bits and hidden within "
            f"{', '.join(f'{k} <= {v:,}' for k, v in sizes.items())})"
        )
    with torch.device("meta"):
        want = CodeAutoencoder(d["dim"], d["bits"], d["hidden"]).state_dict()
    got = {k: tuple(v.shape) for k, v in d["state"].items() if isinstance(v, torch.Tensor)}
    if got != {k: tuple(v.shape) for k, v in want.items()}:
        raise BadInput(f"--codes {path}: its weights do not fit a {d['dim']}-d, {d['bits']}-bit autoencoder")
    model = CodeAutoencoder(d["dim"], d["bits"], d["hidden"])
    model.load_state_dict(d["state"])
    return model.eval()
