"""`alexnet train`: the loop. Resumable to the bit on CPU, observable, data-parallel under torchrun."""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from ..data import make_loader
from ..evaluation.metrics import Tally, evaluate_loader
from ..precision import autocast, resolve_precision
from ..models.towers import TwoTowers
from ..errors import RunFailure
from ..runtime import tune_allocator
from .checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state
from .config import TrainConfig
from .finetune import finetune_pipeline, pretrained_start
from .optim import Schedule, make_optimizer
from .setup import card, datasets, get_stats, make_model, make_pipeline

FIELDS = ["epoch", "train_loss", "train_top1_err", "train_top5_err", "val_loss", "val_top1_err",
          "val_top5_err", "lr", "img_per_s", "seconds", "skipped"]


class NonFiniteLoss(RunFailure):
    pass


class Stop(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _dist() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _all_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t)
    return t


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: dict | None = None, progress: bool = True):
        self.cfg = cfg
        self.rank, self.world, local = _dist()
        self.main = self.rank == 0
        self.progress = progress and self.main
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
        dev = cfg.device
        if dev.startswith("cuda") and self.world > 1 and dev == "cuda":
            dev = f"cuda:{local}"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {cfg.device}: CUDA is not available on this machine")
        self.device = torch.device(dev)
        if self.device.type == "cpu":
            tune_allocator()
        self.run = Path(cfg.run_dir)
        if self.main:
            self.run.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run / "config.yaml")
        torch.manual_seed(cfg.seed + self.rank)  # dropout; the model is built from its own seed
        random.seed(cfg.seed + self.rank)
        np.random.seed(cfg.seed + self.rank)

        self.train_ds, self.val_ds = datasets(cfg)
        stats = get_stats(cfg, self.train_ds, self.run, True, self.progress) if self.main else None
        if self.world > 1:
            dist.barrier()  # rank 0 has computed RUN/stats.pt if it was missing
            if not self.main:
                stats = get_stats(cfg, self.train_ds, self.run, False, False)
        classes = self.train_ds.classes
        channels = self.train_ds.source.channels
        if cfg.init_from:  # fine-tuning: the pretrained net, a new output layer, its preprocessing
            model, pretrained = pretrained_start(cfg, len(classes), cfg.seed)
        else:
            model, pretrained = make_model(cfg, len(classes), channels), None
        crop = cfg.crop or model.input_size
        self.towers = None
        if cfg.towers_on:  # §3.2: the two towers on two devices; batches start on the first
            model = self.towers = TwoTowers(model, cfg.towers_on.split(","))
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
        self.last_row: dict | None = None
        if resume is not None:
            self._restore(resume)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.precision, why = resolve_precision(cfg.precision, self.device)
        if self.main:
            print(why)
        self.amp = autocast(self.precision, self.device)  # training steps and validation alike
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16"
                                           and self.device.type == "cuda")
        pin = self.device.type == "cuda"
        per_rank = cfg.batch_size // self.world
        if per_rank * self.world != cfg.batch_size:
            raise ValueError(f"batch size {cfg.batch_size} does not split over {self.world} processes")
        self.train_loader = make_loader(self.train_ds, per_rank, shuffle=True, workers=cfg.workers,
                                        seed=cfg.seed, rank=self.rank, world=self.world, pin_memory=pin)
        self.val_loader = make_loader(self.val_ds, per_rank, shuffle=False, workers=cfg.workers,
                                      rank=self.rank, world=self.world, pin_memory=pin)

    # ---- checkpoints ------------------------------------------------------------------------
    def _state(self) -> dict:
        rngs = [rng_state(self.gen)]
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, rng_state(self.gen))
        weights = self.towers.merged_state_dict() if self.towers else self.model.state_dict()
        return {"model": weights, "optimizer": self.opt.state_dict(),
                "schedule": self.sched.state_dict(), "epoch": self.epoch, "step": self.step,
                "in_epoch": self.in_epoch, "best": self.best, "rng": rngs,
                "config": self.cfg.to_dict(), "card": self.card}

    def save(self, name: str = "last.pt") -> None:
        state = self._state()  # every rank takes part in gathering the RNG states
        if self.main:
            atomic_save(state, self.run / name)

    def _restore(self, ck: dict) -> None:
        if self.towers:
            self.towers.load_merged_state_dict(ck["model"])
        else:
            self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["schedule"])
        self.epoch, self.step, self.in_epoch, self.best = ck["epoch"], ck["step"], ck["in_epoch"], ck["best"]
        rngs = ck["rng"]
        set_rng_state(rngs[self.rank if len(rngs) > self.rank else 0], self.gen)

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg, stop = self.cfg, {}
        handlers = {s: signal.signal(s, lambda signum, _f: stop.setdefault("sig", signum))
                    for s in (signal.SIGTERM, signal.SIGINT)}
        writer = self._tensorboard()
        steps_this_run, t_run = 0, time.time()
        try:
            while self.epoch < cfg.epochs and not self._done(steps_this_run):
                row = self._train_epoch(stop, lambda: steps_this_run)
                steps_this_run += row.pop("_steps")
                if row.get("_partial"):
                    break
                self._end_epoch(row, writer)
                if cfg.target_train_error is not None and row["train_top1_err"] <= cfg.target_train_error:
                    break  # Fig. 1: epochs (and seconds) to reach a training error
        except Stop as s:
            self.save()
            if self.main:
                print(f"stopped by {s} at epoch {self.epoch} step {self.step}; "
                      f"continue with: alexnet train --resume {self.run}")
            raise
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            if writer is not None:
                writer.close()
        summary = {"epochs": self.epoch, "steps": self.step, "best_val_top1_err": self.best,
                   "last_epoch": self.last_row, "seconds_this_run": time.time() - t_run,
                   "run_dir": str(self.run)}
        if self.main:
            (self.run / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _done(self, steps_this_run: int) -> bool:
        c = self.cfg
        return ((c.max_iters is not None and self.step >= c.max_iters)
                or (c.max_steps is not None and steps_this_run >= c.max_steps))

    def _train_epoch(self, stop: dict, steps_so_far) -> dict:
        cfg = self.cfg
        self.net.train()
        sampler = self.train_loader.sampler
        sampler.set_epoch(self.epoch, skip=self.in_epoch * self.train_loader.batch_size)
        per_rank = -(-sampler.n // sampler.world)
        n_batches = -(-per_rank // self.train_loader.batch_size)
        if cfg.limit_batches:
            n_batches = min(n_batches, cfg.limit_batches)
        tally, skipped, steps, seen, t0 = Tally(self.model.num_classes), 0, 0, 0, time.time()
        bar = tqdm(total=n_batches, initial=self.in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   unit="batch", disable=not self.progress)
        for batch in self.train_loader:
            if self.in_epoch >= n_batches:
                break
            skipped += len(batch.skipped)
            if len(batch.images):
                loss, logits, labels = self._step(batch)
                tally.add(logits.detach().float(), labels, loss * len(labels))
                seen += len(labels)
            self.step, self.in_epoch, steps = self.step + 1, self.in_epoch + 1, steps + 1
            self.sched.after_step(self.step)
            bar.update(1)
            bar.set_postfix(loss=f"{tally.loss_sum / max(tally.n, 1):.4f}",
                            img_s=f"{seen * self.world / (time.time() - t0):.0f}", lr=f"{self.sched.lr:.2g}")
            if "sig" in stop:
                bar.close()
                raise Stop(stop["sig"])
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save()
            if self._done(steps_so_far() + steps) and self.in_epoch < n_batches:
                bar.close()
                self.save()  # stopped mid-epoch: --resume continues from here
                return {"_steps": steps, "_partial": True}
        bar.close()
        secs = time.time() - t0
        t = _all_sum(tally.as_tensor(), self.world)
        n = max(t[0].item(), 1)
        return {"_steps": steps, "epoch": self.epoch + 1, "train_loss": t[1].item() / n,
                "train_top1_err": 1 - t[2].item() / n, "train_top5_err": 1 - t[3].item() / n,
                "lr": self.sched.lr, "img_per_s": seen * self.world / max(secs, 1e-9),
                "seconds": secs, "skipped": skipped}

    def _step(self, batch):
        x = self.pipeline.train(batch.images.to(self.device, non_blocking=True), self.gen)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = batch.labels.to(self.device, non_blocking=True)
        with self.amp:
            logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y)
        bad = _all_sum(torch.tensor([0.0 if torch.isfinite(loss) else 1.0]), self.world)
        if bad.item():
            raise NonFiniteLoss(f"the loss became {loss.item()} at epoch {self.epoch + 1} step "
                                f"{self.step + 1}; stopping. The last good checkpoint is "
                                f"{self.run / 'last.pt'} (try a lower --lr)")
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.item(), logits, y

    def _end_epoch(self, row: dict, writer) -> None:
        cfg = self.cfg
        val, skipped = evaluate_loader([self.net], self.val_loader, self.pipeline, self.model.num_classes,
                                       self.device, cfg.eval_crops, cfg.limit_batches, cfg.channels_last,
                                       self.amp, self.progress, desc="validate")
        t = _all_sum(val.as_tensor(), self.world)
        n = max(t[0].item(), 1)
        row.update(val_loss=t[1].item() / n, val_top1_err=1 - t[2].item() / n,
                   val_top5_err=1 - t[3].item() / n, skipped=row["skipped"] + skipped)
        self.epoch, self.in_epoch = self.epoch + 1, 0
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
            with open(path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < row["epoch"]]
        rows.append({k: row[k] for k in FIELDS})
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            w.writerows(rows)

    def _tensorboard(self):
        if not self.main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return SummaryWriter(str(self.run / "tb"))


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    return Trainer(cfg, progress=progress).fit()


def resume(run_dir: str, progress: bool = True, **changes) -> dict:
    ck = load_checkpoint(run_dir)
    # --max-steps limits one invocation; it does not carry over into the continuation
    cfg = TrainConfig(**{**ck["config"], "max_steps": None,
                         **{k: v for k, v in changes.items() if v is not None}})
    return Trainer(cfg.validate(), resume=ck, progress=progress).fit()
