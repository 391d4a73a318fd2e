"""`alexnet train`: the loop. Resumable to the bit on CPU, observable, data-parallel under torchrun.

No step waits for the device: losses and hit counts accumulate in device tensors that the host
reads once per `log_every` steps (guard.py). A run writes only into its run folder; a new run
never reuses one that holds a run (unless told to overwrite it), and a resumed run writes into the
folder it was resumed from, whatever its checkpoint says.
"""
from __future__ import annotations

import csv
import io
import math
import random
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from ..data import make_loader, resolve_workers
from ..errors import BadInput, RunFailure
from ..evaluation.metrics import Tally, evaluate_loader
from ..fileio import atomic_write_text, missing_folders, remove_empty
from ..jsonio import dumps
from ..models.towers import TwoTowers
from ..precision import autocast, resolve_precision
from ..runtime import tune_allocator
from . import distributed
from .checkpoint import (
    claim_run_dir,
    read_metrics,
    remove_run_files,
    resume_config,
    rng_state,
    save_checkpoint,
    set_rng_state,
    sweep_temporaries,
)
from .config import TrainConfig, build_config
from .finetune import finetune_pipeline, pretrained_start
from .guard import Guard, NonFiniteLoss, Stop, on_signals, raise_stop, restore
from .optim import Schedule, make_optimizer
from .setup import card, check_crop, datasets, get_stats, make_model, make_pipeline

FIELDS = ["epoch", "train_loss", "train_top1_err", "train_top5_err", "val_loss", "val_top1_err",
          "val_top5_err", "lr", "img_per_s", "seconds", "skipped"]
# what `--resume` may change: limits and machinery, never the recipe
RESUME_CHANGES = ("epochs", "max_steps", "max_iters", "limit_batches", "target_train_error",
                  "checkpoint_every", "log_every", "workers", "device")


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: dict | None = None, progress: bool = True,
                 overwrite: bool = False):
        self.cfg = cfg
        self.rank, self.world, self.local, self.local_world = distributed.env()
        self.main = self.rank == 0
        self.progress = progress and self.main
        self.run = Path(cfg.run_dir)
        self.fresh = resume is None
        self.owns_group, self.claimed = False, False
        self.made = missing_folders(self.run) if self.main and self.fresh else []
        handlers = on_signals(raise_stop)  # a signal during start-up ends it cleanly
        try:
            self._start(resume, overwrite)
        except BaseException:
            self._discard()
            self.close(agreed=False)  # a start-up failure may be one rank's alone
            raise
        finally:
            restore(handlers)

    def _discard(self) -> None:
        """Leave no half-made run behind, so that the same command works again: the run files
        of a new run that failed before its first checkpoint, and the folders this call made."""
        if self.claimed:  # every run file in RUN is this call's (claim_run_dir removed or refused others)
            remove_run_files(self.run)
            self.claimed = False
        remove_empty(self.made)

    def _start(self, resume: dict | None, overwrite: bool) -> None:
        cfg = self.cfg
        self.device = dev = distributed.device(cfg.device, "--device", self.local)
        self.workers = resolve_workers(cfg.workers, dev, self.local_world)  # --workers auto: by device
        towers = [distributed.device(d.strip(), "--towers-on") for d in (cfg.towers_on or "").split(",") if d]
        per_rank = cfg.batch_size // self.world  # --batch-size is the global batch (§5: 128)
        if per_rank * self.world != cfg.batch_size:
            raise BadInput(f"--batch-size {cfg.batch_size} (the global batch) does not split over "
                           f"{self.world} processes")
        self.owns_group = distributed.init(dev.type)
        if dev.type == "cpu":
            tune_allocator()
        elif dev.type == "cuda":  # fixed input shapes: let cuDNN time its algorithms once and keep the best
            torch.backends.cudnn.benchmark = True
        if self.main and self.fresh:
            claim_run_dir(self.run, overwrite)
            self.claimed = True  # from here, run files in RUN are this call's
            cfg.run_id = uuid.uuid4().hex[:16]  # a new run's own, even from another run's config.yaml
        distributed.check_shared(self.run, self.rank, self.device)
        if resume is not None and self.world > 1:  # every rank must have read the same checkpoint
            s = torch.tensor([resume["step"], -resume["step"]], dtype=torch.float64, device=dev)
            if distributed.all_max(s).sum().item() != 0:
                raise RunFailure(f"the ranks read different checkpoints from {self.run}/last.pt; is "
                                 "the run folder the same shared folder on every node?")
        torch.manual_seed(cfg.seed + self.rank)  # dropout; the model is built from its own seed
        random.seed(cfg.seed + self.rank)
        np.random.seed(cfg.seed + self.rank)

        # a resumed run numbers its classes by the list it started with, whatever folders appeared since
        self.train_ds, self.val_ds = datasets(cfg, (resume["card"]["classes"] or None) if resume else None)
        classes = self.train_ds.classes
        channels = self.train_ds.source.channels
        if cfg.init_from:  # fine-tuning: the pretrained net, a new output layer, its preprocessing
            model, pretrained = pretrained_start(cfg, len(classes), cfg.seed, channels)
        else:
            model, pretrained = make_model(cfg, len(classes), channels), None
        crop = pretrained.input_size if pretrained else cfg.crop or model.input_size
        # checked before the statistics pass (~35 min on ImageNet), not at the first step
        check_crop(cfg, crop, model, self.train_ds, self.val_ds)
        stats = get_stats(cfg, self.train_ds, self.run, self.rank, self.world, distributed.all_sum,
                          self.progress, self.workers)
        self.towers = None
        if towers:  # §3.2: the two towers on two devices; batches start on the first
            model = self.towers = TwoTowers(model, towers)
            self.device = self.towers.devices[0]
        self.pipeline = (finetune_pipeline(cfg, pretrained) if pretrained else
                         make_pipeline(cfg, crop, stats, channels)).to(self.device)
        self.card = card(cfg, self.pipeline, classes, model, pretrained.model_kw if pretrained else None)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(memory_format=fmt) if self.towers else model.to(self.device, memory_format=fmt)
        self.opt = make_optimizer(self.model, cfg)
        self.sched = Schedule(self.opt, cfg)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 7919 + self.rank)
        self.epoch, self.step, self.in_epoch, self.best = 0, 0, 0, float("inf")
        self.tally, self.skipped = Tally(self.model.num_classes, self.device, confusion=False), 0
        self.last_row: dict | None = None
        self.saved: int | None = None  # the step of the last checkpoint written (or resumed from)
        if resume is not None:
            try:
                self._restore(resume)
            except (RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                raise BadInput(f"{self.run / 'last.pt'}: does not fit the run it belongs to "
                               f"({type(e).__name__}: {first})") from None
            if self.main:  # the checkpoint fits: the run is under way again
                (self.run / "summary.json").unlink(missing_ok=True)  # rewritten when the run finishes
                sweep_temporaries(self.run)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile or cfg.cuda_graphs:  # "reduce-overhead" records the kernels in CUDA graphs
            self.net = torch.compile(self.net, mode="reduce-overhead" if cfg.cuda_graphs else None)
        # --precision auto: bf16 autocast where the CPU/GPU multiplies bf16 natively (precision.py)
        self.precision, why = resolve_precision(cfg.precision, self.device)
        if self.main:
            print(f"precision {self.precision}: {why}")
        self.amp = autocast(self.precision, self.device)  # training steps and validation alike
        # fp16 on CUDA: the scaler reads its overflow flag every step (its own host sync); bf16 needs none
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16"
                                           and self.device.type == "cuda")
        pin = self.device.type == "cuda"
        # every training batch full: a last partial one (143 of ImageNet's images at 256) would make
        # torch.compile and CUDA graphs record the step again each epoch for its odd shape; its
        # images come first in another epoch's order. Kept where there is no full batch at all.
        whole = -(-len(self.train_ds) // self.world) >= per_rank
        self.train_loader = make_loader(self.train_ds, per_rank, shuffle=True, workers=self.workers,
                                        seed=cfg.seed, rank=self.rank, world=self.world, pin_memory=pin,
                                        drop_last=whole)
        # --limit-batches validates on the first batches: in a fixed shuffled order (the same at
        # every validation), since the files are sorted by class and would give one class alone
        self.val_loader = make_loader(self.val_ds, per_rank, shuffle=bool(cfg.limit_batches),
                                      workers=self.workers,
                                      seed=cfg.seed, rank=self.rank, world=self.world, pin_memory=pin)
        self.guard = Guard(self.device)
        # written last: a start-up that fails leaves no run behind; a resumed run's (which may
        # change its limits) beside its next last.pt, so that the two never disagree
        self.config_due = self.main and resume is not None
        if self.main and resume is None:
            self._write_config()

    def _write_config(self) -> None:
        atomic_write_text(self.run / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))

    def close(self, agreed: bool = True) -> None:
        if self.owns_group:
            # DDP's reducer holds the process group: drop it first, so the group is really torn
            # down here, not by a destructor at interpreter exit (where gloo can abort the rank)
            self.net = getattr(self, "model", None)
            distributed.finish(agreed)
            self.owns_group = False

    # ---- checkpoints ------------------------------------------------------------------------
    def _state(self) -> dict:
        mine = {"rng": rng_state(self.gen), "tally": self.tally.sums.cpu(), "skipped": self.skipped}
        ranks = distributed.gather(mine)  # each rank's RNGs and running tally of this epoch
        weights = self.towers.merged_state_dict() if self.towers else self.model.state_dict()
        return {"model": weights, "optimizer": self.opt.state_dict(),
                "schedule": self.sched.state_dict(), "epoch": self.epoch, "step": self.step,
                "in_epoch": self.in_epoch, "best": self.best, "rng": [r["rng"] for r in ranks],
                "epoch_tally": [r["tally"] for r in ranks], "epoch_skipped": [r["skipped"] for r in ranks],
                "world": self.world, "config": self.cfg.to_dict(), "card": self.card}

    def save(self, name: str = "last.pt") -> None:
        """Every rank takes part (RNG states are gathered; a failed write fails all ranks)."""
        self._raise_if_bad(self._read())  # never save poisoned weights
        state, failed = self._state(), None
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

    def _restore(self, ck: dict) -> None:
        if self.towers:
            self.towers.load_merged_state_dict(ck["model"])
        else:
            self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["schedule"])
        self.epoch, self.step, self.in_epoch, self.best = ck["epoch"], ck["step"], ck["in_epoch"], ck["best"]
        mine = self.rank if len(ck["rng"]) > self.rank else 0
        set_rng_state(ck["rng"][mine], self.gen)
        if "epoch_tally" in ck:  # the interrupted epoch's counts so far, so its row covers it all
            self.tally.load(ck["epoch_tally"][mine].to(self.device))
            self.skipped = ck["epoch_skipped"][mine]
        self.saved = ck["step"]

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
        writer = self._tensorboard()
        limit = min(x for x in (cfg.max_steps, None if steps is None else self.step + steps,
                                math.inf) if x is not None)
        t_run, done = time.time(), True
        try:
            while self.epoch < cfg.epochs and self.step < limit:
                row = self._train_epoch(limit)
                if row is None:  # stopped at the step limit inside an epoch
                    done = cfg.max_steps is not None and self.step >= cfg.max_steps
                    break
                self._end_epoch(row, writer)
                sig = self._read()["signal"]
                if sig:  # it came during validation; last.pt holds this epoch's end
                    raise Stop(sig)
                if cfg.target_train_error is not None and row["train_top1_err"] <= cfg.target_train_error:
                    break  # Fig. 1: epochs (and seconds) to reach a training error
            else:
                done = self.epoch >= cfg.epochs or (cfg.max_steps is not None and self.step >= cfg.max_steps)
        except Stop as s:
            if self.main:
                print(f"stopped by {s} at epoch {self.epoch + 1} step {self.step}; continue with: "
                      f"{distributed.resume_command(self.run)}")
            raise
        finally:
            restore(handlers)
            if writer is not None:
                writer.close()
            failure = sys.exc_info()[1]  # stops and non-finite losses are agreed by every rank
            if failure is not None and self.main and self.fresh and self.saved is None:
                self._discard()  # nothing to resume: the same command can simply be run again
            self.close(agreed=failure is None or isinstance(failure, (Stop, NonFiniteLoss)))
        summary = {"epochs": self.epoch, "steps": self.step, "finished": done,
                   "best_val_top1_err": self.best if self.best < math.inf else None,
                   "last_epoch": self.last_row, "seconds_this_run": time.time() - t_run,
                   "run_dir": str(self.run)}
        if self.main and done:
            atomic_write_text(self.run / "summary.json", dumps(summary))
        return summary

    def _interval(self, bar, seen: int, t0: float) -> None:
        r = self._read()
        self._raise_if_bad(r)
        bar.set_postfix(loss=f"{r['loss']:.4f}",
                        img_s=f"{seen * self.world / max(time.time() - t0, 1e-9):.0f}",
                        lr=f"{self.sched.lr:.2g}")
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
        if cfg.limit_batches:
            n_batches = min(n_batches, cfg.limit_batches)
        seen, t0 = 0, time.time()
        bar = tqdm(total=n_batches, initial=self.in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   unit="batch", disable=not self.progress)
        for batch in self.train_loader:
            if self.in_epoch >= n_batches:
                break
            self.skipped += len(batch.skipped)
            if len(batch.images):
                loss, logits, labels = self._step(batch)
                self.tally.add(logits.float(), labels, loss * len(labels))
                self.guard.note_loss(loss, self.step + 1)
                seen += len(labels)
            self.step, self.in_epoch = self.step + 1, self.in_epoch + 1
            self.sched.after_step(self.step)
            bar.update(1)
            # one process needs no agreement to stop: it reads at once (a stop is seldom)
            if self.step % cfg.log_every == 0 or (self.world == 1 and self.guard.stop):
                self._interval(bar, seen, t0)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save()
            if self.step >= limit and self.in_epoch < n_batches:
                bar.close()
                self.save()  # stopped mid-epoch: --resume continues from here
                return None
        self._interval(bar, seen, t0)
        bar.close()
        secs = time.time() - t0
        n, loss, top1, top5 = distributed.all_sum(self.tally.sums.clone()).tolist()
        skipped = int(distributed.all_sum(torch.tensor([float(self.skipped)], device=self.device)).item())
        n = max(n, 1)
        return {"epoch": self.epoch + 1, "train_loss": loss / n, "train_top1_err": 1 - top1 / n,
                "train_top5_err": 1 - top5 / n, "lr": self.sched.lr,
                "img_per_s": seen * self.world / max(secs, 1e-9), "seconds": secs, "skipped": skipped}

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

    def _end_epoch(self, row: dict, writer) -> None:
        cfg = self.cfg
        val, skipped = evaluate_loader([self.net], self.val_loader, self.pipeline, self.model.num_classes,
                                       self.device, cfg.eval_crops, cfg.limit_batches, cfg.channels_last,
                                       self.amp, self.progress, desc="validate")
        n, loss, top1, top5 = distributed.all_sum(val.as_tensor()).tolist()
        n = max(n, 1)
        row.update(val_loss=loss / n, val_top1_err=1 - top1 / n, val_top5_err=1 - top5 / n,
                   skipped=row["skipped"] + skipped)
        self.epoch, self.in_epoch = self.epoch + 1, 0
        self.tally, self.skipped = Tally(self.model.num_classes, self.device, confusion=False), 0
        improved = row["val_top1_err"] < self.best
        self.best = min(self.best, row["val_top1_err"])
        changed = self.sched.after_epoch(self.epoch - 1, row["val_top1_err"])
        self.last_row = {k: row[k] for k in FIELDS}
        if self.main:
            self._write_row(row)
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch":
                        writer.add_scalar(k, v, self.epoch)
            print(f"epoch {self.epoch}: train loss {row['train_loss']:.4f}, val top-1 error "
                  f"{row['val_top1_err']:.2%}, top-5 {row['val_top5_err']:.2%}, "
                  f"{row['img_per_s']:.0f} img/s" + (f", lr -> {self.sched.lr:.3g}" if changed else "")
                  + (f", {row['skipped']} files skipped" if row["skipped"] else ""))
        self.save()
        if improved:
            self.save("best.pt")

    def _write_row(self, row: dict) -> None:
        path = self.run / "metrics.csv"
        rows = []
        if path.exists():  # a resumed run rewrites the epochs it repeats
            rows = [r for r in read_metrics(path) if int(r["epoch"]) < row["epoch"]]
        rows.append({k: row[k] for k in FIELDS})
        out = io.StringIO()
        w = csv.DictWriter(out, FIELDS)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(path, out.getvalue())

    def _tensorboard(self):
        if not self.main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return SummaryWriter(str(self.run / "tb"))


def train(cfg: TrainConfig, progress: bool = True, overwrite: bool = False, steps: int | None = None) -> dict:
    """A new run in cfg.run_dir (refused if it holds one, unless `overwrite`)."""
    return Trainer(cfg, progress=progress, overwrite=overwrite).fit(steps)


def resume(run_dir: str, progress: bool = True, steps: int | None = None, weights: str | None = None,
           force: bool = False, **changes) -> dict:
    """Continue the run in `run_dir` (a folder, or its last.pt) and write into that folder only,
    whatever its checkpoint says; every limit of the run is kept unless changed here. `weights`
    (finetune's --weights), if given, must be the pretrained weights the run started from."""
    handlers = on_signals(raise_stop)  # reading a large checkpoint is start-up too
    try:
        config, ck, path = resume_config(run_dir, weights, changes, RESUME_CHANGES, force)
    finally:
        restore(handlers)
    cfg = build_config(None, None, values_from=str(path), **config)
    return Trainer(cfg, resume=ck, progress=progress).fit(steps)
