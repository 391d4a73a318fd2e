"""Checkpoints that are written atomically and hold everything needed to continue exactly:
model, optimiser, schedule, position (epoch, step, step within the epoch), every RNG, config."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def rng_state(aug_generator: torch.Generator | None) -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             # numpy's state as plain values and a tensor: loadable with weights_only=True
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if aug_generator is not None:
        state["augment"] = aug_generator.get_state()
    return state


def set_rng_state(state: dict, aug_generator: torch.Generator | None) -> None:
    random.setstate(_tuples(state["python"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if aug_generator is not None and "augment" in state:
        aug_generator.set_state(state["augment"])


def _tuples(x):
    """weights_only loading turns tuples in RNG states into lists; random/numpy want tuples."""
    if isinstance(x, list):
        return tuple(_tuples(v) for v in x)
    return x


def atomic_save(obj, path: str | Path) -> None:
    """Write to a temporary file, fsync, rename: a crash leaves the old file or the new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint here")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
