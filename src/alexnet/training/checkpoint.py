"""Checkpoints that are written atomically, carry a SHA-256 verified on load (alexnet.fileio), and
hold everything needed to continue exactly: model, optimiser, schedule, position (epoch, step, step
within the epoch), every rank's RNGs and running epoch tally, the world size, the config."""

from __future__ import annotations

import csv
import io
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import BadInput, RunFailure
from ..fileio import load_pt, save_pt
from ..untrusted import text
from . import distributed
from .config import load_config_file


def rng_state(aug_generator: torch.Generator | None) -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        # numpy's state as plain values and a tensor: loadable with weights_only=True
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
    }
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


def save_checkpoint(state: dict, path: str | Path) -> None:
    save_pt(state, path)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by `alexnet train` (a run folder means its last.pt), digest verified."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    ck = load_pt(path, "checkpoint")
    missing = [k for k in REQUIRED if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise BadInput(f"{path}: not a training checkpoint of `alexnet train` (no {', '.join(missing)})")
    # the digest proves the file is whole, not who wrote it: the types are checked too
    kinds = {
        "model": dict,
        "optimizer": dict,
        "schedule": dict,
        "config": dict,
        "rng": list,
        "epoch": int,
        "step": int,
        "in_epoch": int,
        "best": (int, float),
        "card": dict,
    }
    wrong = [k for k, t in kinds.items() if not isinstance(ck[k], t) or isinstance(ck[k], bool)]
    if not wrong and (
        min(ck["epoch"], ck["step"], ck["in_epoch"]) < 0
        or not ck["rng"]
        or not all(isinstance(r, dict) for r in ck["rng"])
    ):
        wrong = ["epoch/step/rng"]
    classes = ck["card"].get("classes") if isinstance(ck["card"], dict) else None
    if not wrong and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        wrong = ["card's classes"]
    if not wrong and ("world" in ck and (type(ck["world"]) is not int or ck["world"] < 1)):
        wrong = ["world"]
    if wrong:
        raise BadInput(
            f"{path}: not a training checkpoint of `alexnet train` (its {', '.join(wrong)} "
            "has the wrong type or value)"
        )
    return ck


REQUIRED = ("model", "optimizer", "schedule", "epoch", "step", "in_epoch", "best", "rng", "config", "card")
# what a run folder holds; a folder with any of these is a run, and is not trained into afresh
RUN_FILES = (
    "config.yaml",
    "stats.pt",
    "last.pt",
    "best.pt",
    "metrics.csv",
    "steps.csv",
    "summary.json",
    "tb",
)


def claim_run_dir(run: Path, overwrite: bool) -> None:
    """Make RUN ready for a new run: refuse one that holds a run unless `overwrite`, in which
    case that run's files (and only those) are removed."""
    if run.exists() and not run.is_dir():
        raise BadInput(f"--run-dir {run}: is a file; expected a folder (new or holding a run)")
    found = [n for n in RUN_FILES if (run / n).exists()]
    if found and not overwrite:
        again = f"continue it with --resume {run}, " if (run / "last.pt").exists() else ""
        raise BadInput(
            f"--run-dir {run} already holds a run ({', '.join(found)}); {again}start over "
            "with --overwrite, or choose another --run-dir"
        )
    remove_run_files(run)
    run.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(run)


def remove_run_files(run: Path) -> None:
    """The run files in RUN (RUN_FILES), and nothing else that is there."""
    for name in RUN_FILES:
        p = run / name
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)


def same_weights(a: str, b: str | None) -> bool:
    """The same name from `alexnet weights`, or the same file however its path is written."""
    if b is None:
        return False
    return a == b or (Path(a).is_file() and Path(b).is_file() and Path(a).resolve() == Path(b).resolve())


def sweep_temporaries(run: Path) -> None:
    """Temporary files are removed on every failure path but one: a process killed outright
    (SIGKILL, power loss) leaves its `.NAME.PID.tmp`. The next run in the folder removes them."""
    for p in run.glob(".*.tmp"):
        name, _, pid = p.name[1:-4].rpartition(".")
        if name in RUN_FILES and pid.isdigit():
            p.unlink(missing_ok=True)


def read_metrics(path: Path) -> list[dict]:
    """A run's metrics.csv, its epoch, step, lr and error columns checked to be numbers: a copied
    run folder is a stranger's file too (one line naming the file and the row otherwise). `step`
    is absent from files written before it existed."""
    rows = list(csv.DictReader(io.StringIO(text(path, str(path)))))
    for n, r in enumerate(rows, 2):
        try:
            for k in ("epoch", "lr", "train_top1_err", "val_top1_err"):
                float(r[k])
            if r.get("step") is not None:
                int(r["step"])
        except (KeyError, TypeError, ValueError):
            raise BadInput(
                f"{path}:{n}: expected the columns of `alexnet train` (epoch, step, lr, "
                "train_top1_err, val_top1_err, ...) holding numbers"
            ) from None
    return rows


def check_belongs(run: Path, path: Path, config: dict, allowed: tuple) -> None:
    """RUN/config.yaml and the checkpoint must describe the same run: an edited config.yaml would
    be silently reverted by --resume (which continues the checkpoint's own settings), and a
    last.pt copied from another run would continue that run's weights under this run's metrics."""
    yaml_path = run / "config.yaml"
    if not yaml_path.exists():
        return
    on_disk = load_config_file(yaml_path, flag="")
    keys = sorted((set(on_disk) | set(config)) - {"run_dir", "resolved_from"})
    differ = [k for k in keys if on_disk.get(k) != config.get(k)]
    if not differ:
        return
    k = "run_id" if "run_id" in differ else differ[0]
    if k == "run_id":
        what = f"{path.name} is from another run (run_id {config.get(k)!r}, config.yaml's {on_disk.get(k)!r})"
    else:
        what = (
            f"{k} is {on_disk.get(k)!r:.60} in config.yaml but {config.get(k)!r:.60} in {path.name} "
            f"(config.yaml edited, or {path.name} copied from another run)"
        )
    raise BadInput(
        f"{yaml_path} and {path} do not belong together: {what}"
        + (f" and {len(differ) - 1} more setting(s) differ" if len(differ) > 1 else "")
        + f"; --resume continues {path.name}'s own settings (these may change with flags: "
        f"{', '.join(a for a in allowed if a != 'max_iters')}); give --force-resume to continue "
        f"{path.name} as it is, config.yaml then rewritten from it"
    )


def resume_config(
    run_dir: str, weights: str | None, changes: dict, allowed: tuple, force: bool = False
) -> tuple[dict, dict, Path]:
    """(config, checkpoint, its path) to continue the run in `run_dir`: the run's own config with
    the allowed `changes`, its run_dir set to where it is now (a copied run writes into the copy).
    A config.yaml that says otherwise than the checkpoint is refused unless `force`."""
    path = Path(run_dir)
    run, path = (path, path / "last.pt") if path.is_dir() or not path.exists() else (path.parent, path)
    rank, world, _, _ = distributed.env()
    if world > 1 and rank > 0 and not path.exists():
        raise RunFailure(
            f"{path}: not visible to rank {rank}; runs on several nodes need a run folder "
            "on a file system shared by all of them (docs/training.md)"
        )
    ck = load_checkpoint(path)
    if (run / "metrics.csv").exists():  # appended to at the end of the epoch: checked now
        read_metrics(run / "metrics.csv")
    distributed.check_world(path, ck.get("world", len(ck["rng"])), world)
    config = dict(ck["config"])
    if not force:
        check_belongs(run, path, config, allowed)
    if "world" not in ck:  # written before max_steps meant the total: max_iters was the total
        config["max_steps"], config["max_iters"] = config.get("max_iters"), None
    if weights is not None and not same_weights(weights, config.get("init_from")):
        raise BadInput(
            f"--weights {weights}: the run in {run} started from "
            f"{config.get('init_from') or 'scratch'}; "
            "--resume continues from its own checkpoint (leave out --weights)"
        )
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise BadInput(
            f"--resume keeps the run's recipe; cannot change {', '.join(unknown)} "
            f"(can change: {', '.join(allowed)})"
        )
    if changes.get("max_iters") is not None:
        changes["max_steps"], changes["max_iters"] = changes["max_iters"], None
    config.update({k: v for k, v in changes.items() if v is not None}, run_dir=str(run))
    return config, ck, path
