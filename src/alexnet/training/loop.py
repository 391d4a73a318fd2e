"""`alexnet train`: the loop. Resumable to the bit on CPU, observable, data-parallel under torchrun.

No step waits for the device: losses and hit counts accumulate in device tensors that the host
reads once per `log_every` steps (guard.py). A run writes only into its run folder; a new run
never reuses one that holds a run (unless told to overwrite it), and a resumed run writes into the
folder it was resumed from, whatever its checkpoint says.
"""

from __future__ import annotations

import math
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import RunFailure
from ..evaluation.metrics import Tally, evaluate_loader
from ..fileio import atomic_write_text
from ..jsonio import dumps
from . import distributed
from .checkpoint import resume_config, rng_state, save_checkpoint
from .checks import warn_at_start
from .config import TrainConfig, build_config
from .guard import Guard, NonFiniteLoss, Stop, on_signals, raise_stop, restore
from .logs import FIELDS, RunLog
from .setup import RunSetup

# what `--resume` may change: limits and machinery, never the recipe
RESUME_CHANGES = (
    "epochs",
    "max_steps",
    "max_iters",
    "limit_batches",
    "limit_train_batches",
    "limit_val_batches",
    "val_every",
    "target_train_error",
    "checkpoint_every",
    "log_every",
    "workers",
    "device",
)


class Trainer(RunSetup):
    """A run: started by RunSetup (setup.py's steps, in order), then `fit` trains it to its limits."""

    # ---- checkpoints ------------------------------------------------------------------------
    def _state(self) -> dict:
        mine = {"rng": rng_state(self.gen), "tally": self.tally.sums.cpu(), "skipped": self.skipped}
        ranks = distributed.gather(mine)  # each rank's RNGs and running tally of this epoch
        return {
            **self._weights(),
            "optimizer": self.opt.state_dict(),
            "schedule": self.sched.state_dict(),
            "in_epoch": self.in_epoch,
            "best": self.best,
            "best_at": self.best_at,
            "seconds": self._seconds(),
            "rng": [r["rng"] for r in ranks],
            "epoch_tally": [r["tally"] for r in ranks],
            "epoch_skipped": [r["skipped"] for r in ranks],
            "world": self.world,
        }

    def _weights(self) -> dict:
        """What inference needs (best.pt is this alone: no optimiser, no RNGs), and where it was."""
        weights = self.towers.merged_state_dict() if self.towers else self.model.state_dict()
        return {
            "model": weights,
            "card": self.card,
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "val_top1_err": self.last_row["val_top1_err"] if self.last_row else None,
        }

    def _seconds(self) -> float:
        """Training time of the whole run so far: earlier invocations' and this one's."""
        return self.seconds_before + (time.time() - self.t_run if getattr(self, "t_run", None) else 0.0)

    def save(self, name: str = "last.pt") -> None:
        """Every rank takes part (RNG states are gathered; a failed write fails all ranks)."""
        self._raise_if_bad(self._read())  # never save poisoned weights
        state, failed = self._state() if name == "last.pt" else self._weights(), None
        if self.main:
            try:
                save_checkpoint(state, self.run / name)
            except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
                failed = e
        flag = distributed.all_max(torch.tensor([float(failed is not None)], device=self.device))
        if failed is not None:
            raise failed
        if flag.item():
            raise RunFailure(f"rank 0 could not write {self.run / name}")
        if name == "last.pt":
            self.saved = self.step
            if self.config_due:
                self._write_config()
                self.config_due = False

    def _read(self) -> dict:
        return self.guard.read(self._tensors(), self.tally.sums)

    def _tensors(self):
        yield from self.model.parameters()
        for state in self.opt.state.values():
            yield from (v for v in state.values() if torch.is_tensor(v) and v.is_floating_point())

    def _raise_if_bad(self, r: dict) -> None:
        last = None if self.saved is None else f"{self.run / 'last.pt'} (step {self.saved})"
        Guard.raise_if_bad(r, self.step, self.epoch + 1, last)

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self, steps: int | None = None) -> dict:
        """Train until the run's limits (epochs, max_steps, target error); `steps` limits this
        call only: it then saves last.pt and returns, and `resume` continues."""
        cfg, stop = self.cfg, self.guard.stop
        handlers = on_signals(lambda signum, _f: stop.setdefault("sig", signum))
        limit = min(
            x
            for x in (cfg.max_steps, None if steps is None else self.step + steps, math.inf)
            if x is not None
        )
        self.t_run, done, self.log = time.time(), True, None
        try:
            self.log = RunLog(self.run, self.main, self.step, self.epoch)
            while self.epoch < cfg.epochs and self.step < limit:
                row = self._train_epoch(limit)
                if row is None:  # stopped at the step limit inside an epoch
                    done = cfg.max_steps is not None and self.step >= cfg.max_steps
                    break
                self._end_epoch(row)
                sig = self._read()["signal"]
                if sig:  # it came during validation; last.pt holds this epoch's end
                    raise Stop(sig)
                if cfg.target_train_error is not None and row["train_top1_err"] <= cfg.target_train_error:
                    break  # Fig. 1: epochs (and seconds) to reach a training error
            else:
                done = self.epoch >= cfg.epochs or (cfg.max_steps is not None and self.step >= cfg.max_steps)
        except Stop as s:
            if self.main:
                print(
                    f"stopped by {s} at epoch {self.epoch + 1} step {self.step}; continue with: "
                    f"{distributed.resume_command(self.run)}"
                )
            raise
        finally:
            restore(handlers)
            if self.log is not None:
                self.log.close()
            failure = sys.exc_info()[1]  # stops and non-finite losses are agreed by every rank
            if failure is not None and self.main and self.fresh and self.saved is None:
                self._discard()  # nothing to resume: the same command can simply be run again
            self.close(agreed=failure is None or isinstance(failure, (Stop, NonFiniteLoss)))
        at = self.best_at or {}
        summary = {
            "epochs": self.epoch,
            "steps": self.step,
            "finished": done,
            "best_val_top1_err": self.best if self.best < math.inf else None,
            "best_epoch": at.get("epoch"),
            "best_step": at.get("step"),
            "last_epoch": self.last_row,
            "seconds_this_run": time.time() - self.t_run,
            "seconds_total": self._seconds(),
            "run_dir": str(self.run),
        }
        if self.main and done:
            atomic_write_text(self.run / "summary.json", dumps(summary))
        return summary

    def _bar(self, n_batches: int, limit: float) -> tqdm:
        """Progress of the run, not of the epoch: `step 190/200` and the time to the run's end
        (its step limit, or its last epoch's last batch)."""
        cfg = self.cfg
        end = min(limit, self.step + (cfg.epochs - self.epoch) * n_batches - self.in_epoch)
        return tqdm(
            total=int(end),
            initial=self.step,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
            bar_format="{desc}: step {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining}{postfix}",
        )

    def _interval(self, bar) -> None:
        """Every --log-every steps: the guard's checks, a row of RUN/steps.csv, the bar's numbers."""
        r = self._read()
        self._raise_if_bad(r)
        now, (n0, loss0, t0) = time.time(), self.mark
        n = r["n"] - n0
        if n > 0:
            loss, img_s = (r["loss_sum"] - loss0) / n, n * self.world / max(now - t0, 1e-9)
            epoch = self.epoch + self.in_epoch / max(self.n_batches, 1)
            self.log.step(self.step, epoch, loss, self.sched.lr, img_s)
            bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{img_s:.0f}", lr=f"{self.sched.lr:.2g}")
        self.mark = (r["n"], r["loss_sum"], now)
        if r["signal"]:  # agreed by every rank: all save this same step and stop
            bar.close()
            self.save()
            raise Stop(r["signal"])

    def _train_epoch(self, limit: float) -> dict | None:
        cfg = self.cfg
        self.net.train()
        sampler = self.train_loader.sampler
        sampler.set_epoch(self.epoch, skip=self.in_epoch * self.train_loader.batch_size)
        per_rank, size = -(-sampler.n // sampler.world), self.train_loader.batch_size
        n_batches = per_rank // size if self.train_loader.drop_last else -(-per_rank // size)
        n_batches = self.n_batches = min(n_batches, cfg.train_batches or math.inf)
        seen, self.t_epoch = 0, time.time()  # t_epoch: moved on by validations, so it times training only
        self.mark = (*self.tally.sums[:2].tolist(), self.t_epoch)  # the counts at the last step row
        bar = self._bar(n_batches, limit)
        for batch in self.train_loader:
            if self.in_epoch >= n_batches:
                break
            self.skipped += len(batch.skipped)
            if len(batch.images):
                if self.step == 0 and self.main:  # a fresh start from weights that cannot learn: say so
                    warn_at_start(self.model, self.pipeline, batch, self.device, self.amp)
                loss, logits, labels = self._step(batch)
                self.tally.add(logits.float(), labels, loss * len(labels))
                self.guard.note_loss(loss, self.step + 1)
                seen += len(labels)
            self.step, self.in_epoch = self.step + 1, self.in_epoch + 1
            self.sched.after_step(self.step)
            bar.update(1)
            # one process needs no agreement to stop: it reads at once (a stop is seldom)
            if self.step % cfg.log_every == 0 or (self.world == 1 and self.guard.stop):
                self._interval(bar)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save()
            if self.in_epoch < n_batches:  # an epoch's end validates anyway (_end_epoch)
                run_ends = cfg.max_steps is not None and self.step >= cfg.max_steps
                if run_ends or (cfg.val_every and self.step % cfg.val_every == 0):
                    self._validate_mid_epoch(seen)  # the run's end, or every --val-every steps
                if self.step >= limit:
                    self._interval(bar)  # the last step of every invocation has its row
                    bar.close()
                    if self.saved != self.step:
                        self.save()  # stopped mid-epoch: --resume continues from here
                    return None
        self._interval(bar)
        bar.close()
        return self._train_row(seen)

    def _train_row(self, seen: int) -> dict:
        """The epoch's training numbers so far, over every rank."""
        secs = time.time() - self.t_epoch
        n, loss, top1, top5 = distributed.all_sum(self.tally.sums.clone()).tolist()
        skipped = int(distributed.all_sum(torch.tensor([float(self.skipped)], device=self.device)).item())
        n = max(n, 1)
        return {
            "epoch": self.epoch + 1,
            "step": self.step,
            "train_loss": loss / n,
            "train_top1_err": 1 - top1 / n,
            "train_top5_err": 1 - top5 / n,
            "lr": self.sched.lr,
            "img_per_s": seen * self.world / max(secs, 1e-9),
            "seconds": secs,
            "skipped": skipped,
        }

    def _step(self, batch):
        # the pipeline emits the model's memory layout: no conversion here
        x = self.pipeline.train(batch.images.to(self.device, non_blocking=True), self.gen)
        y = batch.labels.to(self.device, non_blocking=True)
        if self.cfg.cuda_graphs:  # a new iteration: the graphs may reuse the last one's outputs
            torch.compiler.cudagraph_mark_step_begin()
        with self.amp:
            logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.detach(), logits.detach(), y

    def _validate(self, row: dict) -> None:
        """Validation numbers into `row` (a training row), over every rank."""
        cfg = self.cfg
        val, skipped = evaluate_loader(
            [self.net],
            self.val_loader,
            self.pipeline,
            self.model.num_classes,
            self.device,
            cfg.eval_crops,
            cfg.val_batches,
            cfg.channels_last,
            self.amp,
            self.progress,
            desc="validate",
        )
        n, loss, top1, top5 = distributed.all_sum(val.as_tensor()).tolist()
        n = max(n, 1)
        row.update(
            val_loss=loss / n,
            val_top1_err=1 - top1 / n,
            val_top5_err=1 - top5 / n,
            skipped=row["skipped"] + skipped,
        )
        self.validated_at = self.step

    def _validate_mid_epoch(self, seen: int) -> None:
        if self.validated_at == self.step:
            return
        t = time.time()
        row = self._train_row(seen)
        row["epoch"] = round(self.epoch + self.in_epoch / self.n_batches, 4)  # epochs done: 1.5
        self._validate(row)
        self.net.train()
        self._record(row, f"step {self.step} (epoch {row['epoch']:g})")
        spent = time.time() - t  # validation is not training time (img/s, seconds)
        self.t_epoch += spent
        self.mark = (*self.mark[:2], self.mark[2] + spent)

    def _end_epoch(self, row: dict) -> None:
        self._validate(row)
        self.epoch, self.in_epoch = self.epoch + 1, 0
        self.tally, self.skipped = Tally(self.model.num_classes, self.device, confusion=False), 0
        changed = self.sched.after_epoch(self.epoch - 1, row["val_top1_err"])
        self._record(row, f"epoch {self.epoch}", f", lr -> {self.sched.lr:.3g}" if changed else "")

    def _record(self, row: dict, at: str, extra: str = "") -> None:
        """After a validation: the metrics row, last.pt, and best.pt when the error improved."""
        improved = row["val_top1_err"] < self.best
        if improved:
            self.best, self.best_at = row["val_top1_err"], {"epoch": row["epoch"], "step": self.step}
        self.last_row = {k: row[k] for k in FIELDS}
        self.log.metrics(self.last_row)
        if self.main:  # (tqdm.write: a progress bar may be open)
            tqdm.write(
                f"{at}: train loss {row['train_loss']:.4f}, val top-1 error "
                f"{row['val_top1_err']:.2%}, top-5 {row['val_top5_err']:.2%}, "
                f"{row['img_per_s']:.0f} img/s{extra}"
                + (f", {row['skipped']} files skipped" if row["skipped"] else "")
            )
        self.save()
        if improved:
            self.save("best.pt")


def train(cfg: TrainConfig, progress: bool = True, overwrite: bool = False, steps: int | None = None) -> dict:
    """A new run in cfg.run_dir (refused if it holds one, unless `overwrite`)."""
    return Trainer(cfg, progress=progress, overwrite=overwrite).fit(steps)


def resume(
    run_dir: str,
    progress: bool = True,
    steps: int | None = None,
    weights: str | None = None,
    force: bool = False,
    **changes,
) -> dict:
    """Continue the run in `run_dir` (a folder, or its last.pt) and write into that folder only,
    whatever its checkpoint says; every limit of the run is kept unless changed here. `weights`
    (finetune's --weights), if given, must be the pretrained weights the run started from."""
    handlers = on_signals(raise_stop)  # reading a large checkpoint is start-up too
    try:
        config, ck, path = resume_config(run_dir, weights, changes, RESUME_CHANGES, force)
    finally:
        restore(handlers)
    sources = config.pop("resolved_from", None)
    sources = {k: str(v) for k, v in sources.items()} if isinstance(sources, dict) else {}
    cfg = build_config(None, None, values_from=str(path), **config)
    # each setting's source stays where it first came from ("--lr", "recipe cifar10-quick");
    # what this resume changed says so
    changed = {k for k, v in changes.items() if v is not None and k != "max_iters"}
    cfg.resolved_from = {
        **{k: v for k, v in sources.items() if k not in changed},
        **{k: f"--{k.replace('_', '-')} (on resume)" for k in changed},
    }
    return Trainer(cfg, resume=ck, progress=progress).fit(steps)
