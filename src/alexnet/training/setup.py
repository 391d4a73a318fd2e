"""Everything a run builds before its first step: data, statistics, preprocessing, model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..card import Card
from ..data import Decoding, Normalizer, Pipeline, compute_stats, load_stats, open_dataset, save_stats
from ..data.sources import MissingSplit
from ..data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC
from ..errors import BadInput
from ..models import create_model
from ..nn import LocalResponseNorm
from .config import TrainConfig


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
        raise BadInput(f"--data {cfg.data}: {len(unlabelled) or len(train)} training image(s) have no class, "
                       f"e.g. {train.source.names[unlabelled[0] if len(unlabelled) else 0]} (expected "
                       f"<class>/ folders, .cls members, or --labels with a flat folder)")
    try:
        val = open_dataset(cfg.val_data or cfg.data, "val", decoding, labels_file=cfg.labels,
                           classes=train.classes, classes_from=f"the training split of {cfg.data}",
                           flag="--val-data" if cfg.val_data else "--data")
    except MissingSplit as e:
        if cfg.val_data:
            raise
        raise BadInput(f"{e}; give the validation images with --val-data") from None
    return train, val


def get_stats(cfg: TrainConfig, train, run_dir: Path, rank: int = 0, world: int = 1, reduce=None,
              progress: bool = True, workers: int = 2) -> dict | None:
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
            raise BadInput(f"--stats {cfg.stats}: its mean image is {w}x{h}, the images are kept at their "
                           f"native {native[0]}x{native[1]} (make the statistics with `alexnet stats "
                           "--resize 0`, or use --mean channel)")
        return stats
    if cfg.mean == "channel" and cfg.pca_std == 0:
        return None  # ImageNet's channel means will do
    path = run_dir / "stats.pt"
    if path.exists():  # a resumed run: every rank sees RUN (checked before)
        return checked_stats(load_stats(path), str(path), channels)
    stats = compute_stats(train, batch_size=256, workers=workers, progress=progress, rank=rank,
                          world=world, reduce=reduce)
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
        raise BadInput(f"{what}: {name} takes {model.input_size}x{model.input_size} input (sides "
                       f"{model.sides()} work)")
    for ds, flag, data in ((train, "--data", cfg.data), (val, "--val-data" if cfg.val_data else "--data",
                                                         cfg.val_data or cfg.data)):
        w, h = (cfg.resize, cfg.resize) if cfg.resize else ds.native_size() or (crop, crop)
        if crop > min(w, h):
            raise BadInput(f"{what} is larger than the stored {w}x{h} images of {flag} {data} (give "
                           f"--resize {crop} or more, or a smaller --crop)")


def checked_stats(stats, where: str, channels: int) -> dict:
    """A statistics file's tensors, each of the shape `alexnet stats` writes for `channels`-channel
    images, all finite: a file from elsewhere fails here, not in the first batch."""
    want = {"mean": (channels,), "std": (channels,), "eigval": (channels,), "eigvec": (channels, channels)}
    ok = isinstance(stats, dict) and all(
        isinstance(stats.get(k), torch.Tensor) and tuple(stats[k].shape) == s for k, s in want.items())
    image = stats.get("mean_image") if isinstance(stats, dict) else None
    ok = ok and isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == channels
    if not ok or not all(bool(torch.isfinite(stats[k]).all()) for k in (*want, "mean_image")):
        raise BadInput(f"{where}: not statistics of {channels}-channel images from `alexnet stats` "
                       f"(expected finite mean, std, eigval of {channels}, eigvec {channels}x{channels}, "
                       f"mean_image {channels}xHxW)")
    return stats


def make_pipeline(cfg: TrainConfig, crop: int, stats: dict | None, channels: int) -> Pipeline:
    if stats is None:
        mean = torch.tensor([0.485, 0.456, 0.406][:channels] if channels == 3 else [0.5])
        eigval, eigvec = torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC)
    else:
        mean = stats["mean_image"] if cfg.mean == "image" else stats["mean"]
        where = cfg.stats or "RUN/stats.pt"
        if mean.shape[0] != channels:
            raise BadInput(f"--stats {where}: statistics of {mean.shape[0]}-channel images, the data has "
                           f"{channels}")
        stored = (cfg.resize, cfg.resize)
        if cfg.mean == "image" and cfg.resize is not None and tuple(mean.shape[1:]) != stored:
            raise BadInput(f"--stats {where}: its mean image is {mean.shape[2]}x{mean.shape[1]}, the images "
                           f"are stored at {cfg.resize}x{cfg.resize} (make the statistics with "
                           f"`alexnet stats --resize {cfg.resize}`, or use --mean channel)")
        eigval, eigvec = stats["eigval"], stats["eigvec"]
        if eigval.numel() != 3:  # grey images: no colour noise
            eigval, eigvec = torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC)
    std = torch.tensor(cfg.std, dtype=torch.float32) if cfg.std else None
    return Pipeline(Normalizer(mean.float(), std, cfg.pixel_scale), crop=crop, flip=cfg.flip,
                    pca_std=cfg.pca_std, eigval=eigval.float(), eigvec=eigvec.float(),
                    random_resized=cfg.random_resized_crop, channels_last=cfg.channels_last)


def make_model(cfg: TrainConfig, num_classes: int, in_channels: int):
    kw = dict(cfg.model_kw)
    kw.setdefault("seed", cfg.seed)
    return create_model(cfg.model, num_classes=num_classes, in_channels=in_channels, **kw)


def card(cfg: TrainConfig, pipeline: Pipeline, classes: list[str], model,
         model_kw: dict | None = None) -> dict:
    """What the weights need at test time, stored with them in every checkpoint."""
    n = pipeline.normalize
    lrn = next((m.convention for m in model.modules() if isinstance(m, LocalResponseNorm)), None)
    return Card(getattr(model, "name", cfg.model), model.num_classes, pipeline.crop, model.in_channels,
                cfg.resize,
                n.mean.cpu().tolist(), None if n.std is None else n.std.cpu().tolist(), n.scale,
                "BGR" if n.bgr else "RGB", lrn, list(classes), f"alexnet train {cfg.run_dir}",
                dict(cfg.model_kw if model_kw is None else model_kw)).to_dict()
