"""Everything a run builds before its first step: data, statistics, preprocessing, model, and
the order it is built in (RunSetup, whose steps the Trainer runs first)."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import numpy as np
import torch
import yaml

from ..card import Card
from ..data import (
    Decoding,
    Normalizer,
    Pipeline,
    compute_stats,
    load_stats,
    make_loader,
    open_dataset,
    resolve_workers,
    save_stats,
)
from ..data.sources import MissingSplit
from ..data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC
from ..errors import BadInput, RunFailure
from ..evaluation.metrics import Tally
from ..fileio import atomic_write_text, missing_folders, remove_empty
from ..models import create_model
from ..models.towers import TwoTowers
from ..nn import LocalResponseNorm
from ..precision import autocast, resolve_precision
from ..runtime import tune_allocator
from . import distributed
from .checkpoint import claim_run_dir, remove_run_files, set_rng_state, sweep_temporaries
from .config import TrainConfig
from .finetune import finetune_pipeline, pretrained_start
from .guard import Guard, on_signals, raise_stop, restore
from .optim import Schedule, make_optimizer


def datasets(cfg: TrainConfig, classes: list[str] | None = None):
    """The train and val splits, numbered by one class list: `classes` (a resumed run's card) or
    the training split's own. The val split (or --val-data) is matched to it by name, so a
    validation folder with fewer classes, or in another order, keeps every label."""
    decoding = Decoding(cfg.resize, cfg.resize)
    train = open_dataset(cfg.data, "train", decoding, classes=classes, classes_from="the run's checkpoint")
    if train.source.split is None and cfg.val_data is None:
        raise BadInput(f"--data {cfg.data}: has no separate val/test split; give --val-data")
    unlabelled = np.flatnonzero(train.source.labels < 0)
    if len(unlabelled) or not train.classes:
        raise BadInput(
            f"--data {cfg.data}: {len(unlabelled) or len(train)} training image(s) have no class, "
            f"e.g. {train.source.names[unlabelled[0] if len(unlabelled) else 0]} (expected "
            f"<class>/ folders, .cls members, or --labels with a flat folder)"
        )
    try:
        val = open_dataset(
            cfg.val_data or cfg.data,
            "val",
            decoding,
            labels_file=cfg.labels,
            classes=train.classes,
            classes_from=f"the training split of {cfg.data}",
            flag="--val-data" if cfg.val_data else "--data",
        )
    except MissingSplit as e:
        if cfg.val_data:
            raise
        raise BadInput(f"{e}; give the validation images with --val-data") from None
    return train, val


def get_stats(
    cfg: TrainConfig,
    train,
    run_dir: Path,
    rank: int = 0,
    world: int = 1,
    reduce=None,
    progress: bool = True,
    workers: int = 2,
) -> dict | None:
    """The statistics file given, or RUN/stats.pt, computed on the first run by all `world`
    processes together (each reads every world-th image; `reduce` sums their float64 totals),
    so no rank waits at a barrier for one rank's pass over the whole training set."""
    if cfg.init_from:
        return None  # fine-tuning keeps the pretrained weights' own preprocessing
    channels = train.source.channels
    if cfg.stats:
        stats = checked_stats(load_stats(cfg.stats), f"--stats {cfg.stats}", channels)
        native = train.native_size() if cfg.mean == "image" and cfg.resize is None else None
        if native and tuple(stats["mean_image"].shape[1:]) != (native[1], native[0]):
            h, w = stats["mean_image"].shape[1:]
            raise BadInput(
                f"--stats {cfg.stats}: its mean image is {w}x{h}, the images are kept at their "
                f"native {native[0]}x{native[1]} (make the statistics with `alexnet stats "
                "--resize 0`, or use --mean channel)"
            )
        return stats
    if cfg.mean == "channel" and cfg.pca_std == 0:
        return None  # ImageNet's channel means will do
    path = run_dir / "stats.pt"
    if path.exists():  # a resumed run: every rank sees RUN (checked before)
        return checked_stats(load_stats(path), str(path), channels)
    stats = compute_stats(
        train, batch_size=256, workers=workers, progress=progress, rank=rank, world=world, reduce=reduce
    )
    if rank == 0:
        save_stats(stats, path)
    return stats


def check_crop(cfg: TrainConfig, crop: int, model, train, val) -> None:
    """The crop is a side the model takes and fits in the stored images of both splits: checked
    at start-up, before the statistics pass (~35 min on ImageNet), not at the first step."""
    where = (cfg.resolved_from or {}).get("crop") if not cfg.init_from else f"the weights {cfg.init_from}"
    what = f"--crop {crop}" if where == "--crop" else f"crop {crop}" + (f" (from {where})" if where else "")
    name = getattr(model, "name", cfg.model)
    if not model.accepts(crop):
        raise BadInput(
            f"{what}: {name} takes {model.input_size}x{model.input_size} input (sides {model.sides()} work)"
        )
    for ds, flag, data in (
        (train, "--data", cfg.data),
        (val, "--val-data" if cfg.val_data else "--data", cfg.val_data or cfg.data),
    ):
        w, h = (cfg.resize, cfg.resize) if cfg.resize else ds.native_size() or (crop, crop)
        if crop > min(w, h):
            raise BadInput(
                f"{what} is larger than the stored {w}x{h} images of {flag} {data} (give "
                f"--resize {crop} or more, or a smaller --crop)"
            )


def checked_stats(stats, where: str, channels: int) -> dict:
    """A statistics file's tensors, each of the shape `alexnet stats` writes for `channels`-channel
    images, all finite: a file from elsewhere fails here, not in the first batch."""
    want = {"mean": (channels,), "std": (channels,), "eigval": (channels,), "eigvec": (channels, channels)}
    ok = isinstance(stats, dict) and all(
        isinstance(stats.get(k), torch.Tensor) and tuple(stats[k].shape) == s for k, s in want.items()
    )
    image = stats.get("mean_image") if isinstance(stats, dict) else None
    ok = ok and isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == channels
    if not ok or not all(bool(torch.isfinite(stats[k]).all()) for k in (*want, "mean_image")):
        raise BadInput(
            f"{where}: not statistics of {channels}-channel images from `alexnet stats` "
            f"(expected finite mean, std, eigval of {channels}, eigvec {channels}x{channels}, "
            f"mean_image {channels}xHxW)"
        )
    return stats


def make_pipeline(cfg: TrainConfig, crop: int, stats: dict | None, channels: int) -> Pipeline:
    if stats is None:
        mean = torch.tensor([0.485, 0.456, 0.406][:channels] if channels == 3 else [0.5])
        eigval, eigvec = torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC)
    else:
        mean = stats["mean_image"] if cfg.mean == "image" else stats["mean"]
        where = cfg.stats or "RUN/stats.pt"
        if mean.shape[0] != channels:
            raise BadInput(
                f"--stats {where}: statistics of {mean.shape[0]}-channel images, the data has {channels}"
            )
        stored = (cfg.resize, cfg.resize)
        if cfg.mean == "image" and cfg.resize is not None and tuple(mean.shape[1:]) != stored:
            raise BadInput(
                f"--stats {where}: its mean image is {mean.shape[2]}x{mean.shape[1]}, the images "
                f"are stored at {cfg.resize}x{cfg.resize} (make the statistics with "
                f"`alexnet stats --resize {cfg.resize}`, or use --mean channel)"
            )
        eigval, eigvec = stats["eigval"], stats["eigvec"]
        if eigval.numel() != 3:  # grey images: no colour noise
            eigval, eigvec = torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC)
    std = torch.tensor(cfg.std, dtype=torch.float32) if cfg.std else None
    return Pipeline(
        Normalizer(mean.float(), std, cfg.pixel_scale),
        crop=crop,
        flip=cfg.flip,
        pca_std=cfg.pca_std,
        eigval=eigval.float(),
        eigvec=eigvec.float(),
        random_resized=cfg.random_resized_crop,
        channels_last=cfg.channels_last,
    )


def make_model(cfg: TrainConfig, num_classes: int, in_channels: int):
    kw = dict(cfg.model_kw)
    kw.setdefault("seed", cfg.seed)
    return create_model(cfg.model, num_classes=num_classes, in_channels=in_channels, **kw)


def card(
    cfg: TrainConfig, pipeline: Pipeline, classes: list[str], model, model_kw: dict | None = None
) -> dict:
    """What the weights need at test time, stored with them in every checkpoint."""
    n = pipeline.normalize
    lrn = next((m.convention for m in model.modules() if isinstance(m, LocalResponseNorm)), None)
    return Card(
        model=getattr(model, "name", cfg.model),
        num_classes=model.num_classes,
        input_size=pipeline.crop,
        in_channels=model.in_channels,
        resize=cfg.resize,
        mean=n.mean.cpu().tolist(),
        std=None if n.std is None else n.std.cpu().tolist(),
        pixel_scale=n.scale,
        channel_order="BGR" if n.bgr else "RGB",
        lrn=lrn,
        classes=list(classes),
        source=f"alexnet train {cfg.run_dir}",
        model_kw=dict(cfg.model_kw if model_kw is None else model_kw),
    ).to_dict()


class RunSetup:
    """A run's start-up as named steps, in the order they depend on each other (`_start`); the
    Trainer (loop.py) is a RunSetup that then trains. A failed start-up leaves nothing behind."""

    def __init__(
        self, cfg: TrainConfig, resume: dict | None = None, progress: bool = True, overwrite: bool = False
    ):
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

    # ---- start-up: each step needs the ones before it ------------------------------------------
    def _start(self, resume: dict | None, overwrite: bool) -> None:
        """Processes, run folder, seeds, data and model, optimiser, the checkpoint's state, the
        network's wrappers, precision, loaders; config.yaml last."""
        per_rank = self._join_processes()
        self._claim_run_dir(overwrite, resume)
        self._seed()
        self._build_data_and_model(resume)
        self._build_optimiser()
        if resume is not None:
            self._resume_from(resume)
        self._wrap_network()
        self._choose_precision()
        self._make_loaders(per_rank)
        self.guard = Guard(self.device)
        # written last: a start-up that fails leaves no run behind; a resumed run's (which may
        # change its limits) beside its next last.pt, so that the two never disagree
        self.config_due = self.main and resume is not None
        if self.main and resume is None:
            self._write_config()

    def _write_config(self) -> None:
        atomic_write_text(self.run / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))

    def _join_processes(self) -> int:
        """This process's device and its share of the batch; the process group under torchrun."""
        cfg = self.cfg
        self.device = dev = distributed.device(cfg.device, "--device", self.local)
        self.workers = resolve_workers(cfg.workers, dev, self.local_world)  # --workers auto: by device
        self.tower_devices = [
            distributed.device(d.strip(), "--towers-on") for d in (cfg.towers_on or "").split(",") if d
        ]
        per_rank = cfg.batch_size // self.world  # --batch-size is the global batch (§5: 128)
        if per_rank * self.world != cfg.batch_size:
            raise BadInput(
                f"--batch-size {cfg.batch_size} (the global batch) does not split over {self.world} processes"
            )
        self.owns_group = distributed.init(dev.type)
        if dev.type == "cpu":
            tune_allocator()
        elif dev.type == "cuda":  # fixed input shapes: let cuDNN time its algorithms once and keep the best
            torch.backends.cudnn.benchmark = True
        return per_rank

    def _claim_run_dir(self, overwrite: bool, resume: dict | None) -> None:
        """A new run takes its folder (rank 0); every rank must see that folder, and a resumed
        run's ranks must have read the same checkpoint."""
        if self.main and self.fresh:
            claim_run_dir(self.run, overwrite)
            self.claimed = True  # from here, run files in RUN are this call's
            self.cfg.run_id = uuid.uuid4().hex[:16]  # a new run's own, even from another run's config.yaml
        distributed.check_shared(self.run, self.rank, self.device)
        if resume is not None and self.world > 1:
            s = torch.tensor([resume["step"], -resume["step"]], dtype=torch.float64, device=self.device)
            if distributed.all_max(s).sum().item() != 0:
                raise RunFailure(
                    f"the ranks read different checkpoints from {self.run}/last.pt; is "
                    "the run folder the same shared folder on every node?"
                )

    def _seed(self) -> None:
        seed = self.cfg.seed + self.rank  # dropout; the model is built from its own seed
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)

    def _build_data_and_model(self, resume: dict | None) -> None:
        """Datasets, the network (new, or pretrained with a new head), the crop check, the
        statistics, the preprocessing and the card, in that order."""
        cfg = self.cfg
        # a resumed run numbers its classes by the list it started with, whatever folders appeared since
        self.train_ds, self.val_ds = datasets(cfg, (resume["card"]["classes"] or None) if resume else None)
        classes, channels = self.train_ds.classes, self.train_ds.source.channels
        if cfg.init_from:  # fine-tuning: the pretrained net, a new output layer, its preprocessing
            model, pretrained = pretrained_start(cfg, len(classes), cfg.seed, channels)
        else:
            model, pretrained = make_model(cfg, len(classes), channels), None
        crop = pretrained.input_size if pretrained else cfg.crop or model.input_size
        # checked before the statistics pass (~35 min on ImageNet), not at the first step
        check_crop(cfg, crop, model, self.train_ds, self.val_ds)
        stats = get_stats(
            cfg,
            self.train_ds,
            self.run,
            self.rank,
            self.world,
            distributed.all_sum,
            self.progress,
            self.workers,
        )
        self.towers = None
        if self.tower_devices:  # §3.2: the two towers on two devices; batches start on the first
            model = self.towers = TwoTowers(model, self.tower_devices)
            self.device = self.towers.devices[0]
        self.pipeline = (
            finetune_pipeline(cfg, pretrained) if pretrained else make_pipeline(cfg, crop, stats, channels)
        ).to(self.device)
        self.card = card(cfg, self.pipeline, classes, model, pretrained.model_kw if pretrained else None)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(memory_format=fmt) if self.towers else model.to(self.device, memory_format=fmt)

    def _build_optimiser(self) -> None:
        """Optimiser, schedule, the augmentation's generator, and the run's position at its start."""
        self.opt = make_optimizer(self.model, self.cfg)
        self.sched = Schedule(self.opt, self.cfg)
        self.gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed * 7919 + self.rank)
        self.epoch, self.step, self.in_epoch, self.best = 0, 0, 0, float("inf")
        self.best_at: dict | None = None  # {"epoch", "step"} of the best validation
        self.seconds_before = 0.0  # time spent by earlier invocations of this run
        self.tally, self.skipped = Tally(self.model.num_classes, self.device, confusion=False), 0
        self.last_row: dict | None = None
        self.validated_at: int | None = None  # the step of the last validation
        self.saved: int | None = None  # the step of the last checkpoint written (or resumed from)

    def _resume_from(self, ck: dict) -> None:
        try:
            self._restore(ck)
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise BadInput(
                f"{self.run / 'last.pt'}: does not fit the run it belongs to ({type(e).__name__}: {first})"
            ) from None
        if self.main:  # the checkpoint fits: the run is under way again
            (self.run / "summary.json").unlink(missing_ok=True)  # rewritten when the run finishes
            sweep_temporaries(self.run)
            limit = f" of {self.cfg.max_steps}" if self.cfg.max_steps else ""
            print(
                f"resuming {self.run} at step {self.step}{limit}: epoch {self.epoch + 1}/"
                f"{self.cfg.epochs}, {self.in_epoch} batches into it (from {self.run / 'last.pt'})"
            )

    def _restore(self, ck: dict) -> None:
        if self.towers:
            self.towers.load_merged_state_dict(ck["model"])
        else:
            self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["schedule"])
        self.epoch, self.step, self.in_epoch, self.best = ck["epoch"], ck["step"], ck["in_epoch"], ck["best"]
        self.best_at = ck["best_at"] if isinstance(ck.get("best_at"), dict) else None
        self.seconds_before = float(ck.get("seconds", 0.0))  # (both absent from older checkpoints)
        self.validated_at = self.step  # nothing to validate again where the run stopped
        mine = self.rank if len(ck["rng"]) > self.rank else 0
        set_rng_state(ck["rng"][mine], self.gen)
        if "epoch_tally" in ck:  # the interrupted epoch's counts so far, so its row covers it all
            self.tally.load(ck["epoch_tally"][mine].to(self.device))
            self.skipped = ck["epoch_skipped"][mine]
        self.saved = ck["step"]

    def _wrap_network(self) -> None:
        """self.net: the model as the steps call it (DDP over the ranks, compiled when asked)."""
        cfg = self.cfg
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.compile or cfg.cuda_graphs:  # "reduce-overhead" records the kernels in CUDA graphs
            self.net = torch.compile(self.net, mode="reduce-overhead" if cfg.cuda_graphs else None)

    def _choose_precision(self) -> None:
        # --precision auto: bf16 autocast where the CPU/GPU multiplies bf16 natively (precision.py)
        self.precision, why = resolve_precision(self.cfg.precision, self.device)
        if self.main:
            print(f"precision {self.precision}: {why}")
        self.amp = autocast(self.precision, self.device)  # training steps and validation alike
        # fp16 on CUDA: the scaler reads its overflow flag every step (its own host sync); bf16 needs none
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.precision == "fp16" and self.device.type == "cuda"
        )

    def _make_loaders(self, per_rank: int) -> None:
        cfg, pin = self.cfg, self.device.type == "cuda"
        # every training batch full: a last partial one (143 of ImageNet's images at 256) would make
        # torch.compile and CUDA graphs record the step again each epoch for its odd shape; its
        # images come first in another epoch's order. Kept where there is no full batch at all.
        whole = -(-len(self.train_ds) // self.world) >= per_rank
        self.train_loader = make_loader(
            self.train_ds,
            per_rank,
            shuffle=True,
            workers=self.workers,
            seed=cfg.seed,
            rank=self.rank,
            world=self.world,
            pin_memory=pin,
            drop_last=whole,
        )
        # a validation limit takes the first batches: in a fixed shuffled order (the same at every
        # validation), since the files are sorted by class and would give one class alone
        self.val_loader = make_loader(
            self.val_ds,
            per_rank,
            shuffle=bool(cfg.val_batches),
            workers=self.workers,
            seed=cfg.seed,
            rank=self.rank,
            world=self.world,
            pin_memory=pin,
        )

    def close(self, agreed: bool = True) -> None:
        if self.owns_group:
            # DDP's reducer holds the process group: drop it first, so the group is really torn
            # down here, not by a destructor at interpreter exit (where gloo can abort the rank)
            self.net = getattr(self, "model", None)
            distributed.finish(agreed)
            self.owns_group = False
