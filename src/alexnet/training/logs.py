"""What a run records as it goes, all against the global step: a row every `--log-every` steps
(RUN/steps.csv: loss, lr, img/s over the interval), a row per validation (RUN/metrics.csv), and
the same numbers in TensorBoard (RUN/tb/) under grouped tags (train/loss, val/top1_err).

A resumed run first drops what was recorded after its checkpoint (a killed run may have logged
steps it never saved), so every file reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..fileio import atomic_write_text
from ..untrusted import text
from .checkpoint import read_metrics

STEP_FIELDS = ["step", "epoch", "loss", "lr", "img_per_s"]
# one row per validation: at every epoch's end, every --val-every steps, and at the run's end;
# `epoch` counts epochs done (2.5: half-way through the third), `step` is the global step
FIELDS = [
    "epoch",
    "step",
    "train_loss",
    "train_top1_err",
    "train_top5_err",
    "val_loss",
    "val_top1_err",
    "val_top5_err",
    "lr",
    "img_per_s",
    "seconds",
    "skipped",
]
# TensorBoard tag of each metrics column (train_* of a partial epoch cover its steps so far)
TAGS = {
    "train_loss": "train/epoch_loss",
    "train_top1_err": "train/top1_err",
    "train_top5_err": "train/top5_err",
    "val_loss": "val/loss",
    "val_top1_err": "val/top1_err",
    "val_top5_err": "val/top5_err",
    "epoch": "train/epoch",
}


def _rows_until(rows: list[dict], step: int, epoch: float) -> list[dict]:
    """The rows recorded at or before `step` (rows of files written before the step column
    existed: at or before `epoch`)."""
    return [r for r in rows if (int(r["step"]) <= step if r.get("step") else float(r["epoch"]) <= epoch)]


def _csv(fields: list[str], rows: list[dict]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fields, extrasaction="ignore", restval="")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def _read_steps(path: Path) -> list[dict]:
    """RUN/steps.csv, a row cut short by a killed process (the last one) left out."""
    rows = []
    for r in csv.DictReader(io.StringIO(text(path, str(path)))):
        try:
            int(r["step"]), float(r["loss"])
        except (KeyError, TypeError, ValueError):
            continue
        rows.append(r)
    return rows


class RunLog:
    """Rank 0's writer of steps.csv, metrics.csv and TensorBoard events (other ranks: no-ops)."""

    def __init__(self, run: Path, main: bool, step: int, epoch: int):
        self.run, self.main, self.tb = run, main, None
        if not main:
            return
        self.steps_path, self.metrics_path = run / "steps.csv", run / "metrics.csv"
        if self.steps_path.exists():  # cut back to the checkpoint's step
            kept = _rows_until(_read_steps(self.steps_path), step, epoch)
            atomic_write_text(self.steps_path, _csv(STEP_FIELDS, kept))
        else:
            atomic_write_text(self.steps_path, _csv(STEP_FIELDS, []))
        if self.metrics_path.exists():
            kept = _rows_until(read_metrics(self.metrics_path), step, epoch)
            atomic_write_text(self.metrics_path, _csv(FIELDS, kept))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional (the dev extra installs it)
            return
        # purge_step: events a killed run wrote after its checkpoint are dropped on resume
        self.tb = SummaryWriter(str(run / "tb"), purge_step=step or None)

    def step(self, step: int, epoch: float, loss: float, lr: float, img_per_s: float) -> None:
        if not self.main:
            return
        row = {
            "step": step,
            "epoch": round(epoch, 4),
            "loss": f"{loss:.6g}",
            "lr": f"{lr:.6g}",
            "img_per_s": f"{img_per_s:.1f}",
        }
        with open(self.steps_path, "a", newline="") as f:  # one line per interval: appended, not rewritten
            csv.DictWriter(f, STEP_FIELDS).writerow(row)
        if self.tb is not None:
            for k in ("loss", "lr", "img_per_s"):
                if math.isfinite(float(row[k])):
                    self.tb.add_scalar(f"train/{k}", float(row[k]), step)

    def metrics(self, row: dict) -> None:
        """One validation's row; rows after its step (from a run killed and resumed) replaced."""
        if not self.main:
            return
        rows = (
            _rows_until(read_metrics(self.metrics_path), row["step"] - 1, row["epoch"] - 1e-9)
            if self.metrics_path.exists()
            else []
        )
        atomic_write_text(self.metrics_path, _csv(FIELDS, rows + [row]))
        if self.tb is not None:
            for k, tag in TAGS.items():
                self.tb.add_scalar(tag, row[k], row["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
