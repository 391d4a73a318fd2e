"""One config for a training run: defaults <- preset <- --config file <- command-line flags.

The resolved config is written to RUN/config.yaml and stored in every checkpoint, so a run can
be read, repeated and resumed from its folder alone.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml


@dataclass
class TrainConfig:
    # what
    model: str = "alexnet"
    model_kw: dict = field(default_factory=dict)      # overrides for create_model (groups, init, ...)
    data: str = ""                                    # a path or a dataset name (cifar10, fashion-mnist)
    val_data: str | None = None                       # default: the val/test split of `data`
    labels: str | None = None                         # labels file for a flat validation folder
    # preprocessing (§2, §4.1)
    resize: int | None = 256                          # shorter side stored; None: native size
    crop: int | None = None                           # training crop; None: the model's input size
    mean: str = "image"                               # "image" (per-pixel, paper) or "channel"
    stats: str | None = None                          # `alexnet stats` file; None: computed into RUN/
    pixel_scale: float = 255.0                        # network input = (pixels/255 - mean) * scale / std
    std: list | None = None
    flip: bool = True
    pca_std: float = 0.1                              # §4.1 colour noise; 0 turns it off
    random_resized_crop: bool = False
    # optimisation (§5)
    epochs: int = 90
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    update_rule: str = "paper"                        # "paper" (lr inside momentum) or "torch"
    bias_lr_mult: float = 1.0
    bias_decay: bool = True
    schedule: str = "plateau"                         # "plateau", "step" or "constant"
    gamma: float = 0.1
    patience: int = 2                                 # plateau: epochs without improvement
    max_drops: int = 3                                # plateau: "reduced three times prior to termination"
    step_size: int = 30                               # step: every step_size `step_unit`s
    step_unit: str = "epoch"                          # "epoch" or "iter"
    max_iters: int | None = None                      # deprecated alias of max_steps (Caffe's max_iter)
    # machinery
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"                           # fp32, bf16 or fp16 autocast
    channels_last: bool = True
    compile: bool = False
    workers: int = 2
    eval_crops: str = "center"                        # "center" or "10"
    run_dir: str = "runs/run"
    checkpoint_every: int = 0                         # steps; 0: only at epoch ends (and on signals)
    max_steps: int | None = None                      # the run's total optimiser steps (all invocations)
    log_every: int = 10                               # steps between host reads (progress, NaN/stop checks)
    limit_batches: int | None = None                  # batches per epoch (train and val), for smoke runs
    target_train_error: float | None = None           # stop after the epoch that reaches it (Fig. 1)
    towers_on: str | None = None                      # "cuda:0,cuda:1": model-parallel towers (§3.2)
    # fine-tuning
    init_from: str | None = None                      # pretrained weights to start from
    train_layers: str | None = None                   # "fc6,fc7,fc8" or "all" (default)
    lr_mult: dict = field(default_factory=dict)       # per layer, e.g. {"fc8": 10}

    def validate(self) -> "TrainConfig":
        choices = {"mean": ("image", "channel"), "update_rule": ("paper", "torch"),
                   "schedule": ("plateau", "step", "constant"), "step_unit": ("epoch", "iter"),
                   "precision": ("fp32", "bf16", "fp16"), "eval_crops": ("center", "10")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"config {key}={getattr(self, key)!r}: expected one of {allowed}")
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"config {key} must be >= 1, got {getattr(self, key)}")
        if self.max_iters is not None:  # the old name of the run's total
            if self.max_steps is not None and self.max_steps != self.max_iters:
                raise ValueError(f"config max_iters={self.max_iters} and max_steps={self.max_steps}: "
                                 "max_iters is the old name of max_steps; give one")
            self.max_steps, self.max_iters = self.max_iters, None
        for key in ("max_steps", "log_every"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"config {key} must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ValueError(f"config lr must be > 0, got {self.lr}")
        if not self.data:
            raise ValueError("no training data: give --data PATH (or a preset that names one)")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


PRESETS: dict[str, dict] = {
    # §5: SGD, momentum 0.9, weight decay 5e-4, batch 128, lr 0.01 divided by 10 when the
    # validation error stopped improving (three times), roughly 90 cycles
    "paper": dict(model="alexnet", epochs=90, batch_size=128, lr=0.01, schedule="plateau",
                  update_rule="paper", mean="image", pca_std=0.1),
    # bvlc_alexnet solver.prototxt: base_lr 0.01, step 100000 x0.1, 450000 iterations, batch 256,
    # bias lr_mult 2 and decay_mult 0; torch-style momentum as in Caffe
    "caffe": dict(model="alexnet_caffe", batch_size=256, lr=0.01, schedule="step", step_unit="iter",
                  step_size=100_000, max_iters=450_000, epochs=1000, update_rule="torch",
                  bias_lr_mult=2.0, bias_decay=False, pca_std=0.0),
    # torchvision's reference recipe for alexnet: lr 0.01, x0.1 every 30 epochs, 90 epochs
    "owt": dict(model="alexnet_owt", batch_size=128, lr=0.01, schedule="step", step_size=30,
                epochs=90, update_rule="torch", mean="channel", pixel_scale=1.0, pca_std=0.0,
                std=[0.229, 0.224, 0.225], random_resized_crop=True),
    # d2l chapter 8.1: Fashion-MNIST resized to 224, lr 0.01, batch 128, 10 epochs, plain SGD
    "d2l": dict(model="alexnet_d2l", data="fashion-mnist", resize=224, crop=224, epochs=10,
                batch_size=128, lr=0.01, momentum=0.0, weight_decay=0.0, schedule="constant",
                update_rule="torch", mean="channel", pixel_scale=1.0, pca_std=0.0, flip=False),
    # the four-layer net of Fig. 1 on CIFAR-10 at 32x32: minutes on a laptop CPU
    "cifar10-quick": dict(model="cifar_convnet", data="cifar10", resize=None, crop=32, epochs=6,
                          batch_size=128, lr=0.05, schedule="step", step_size=4, update_rule="torch",
                          weight_decay=5e-4, mean="image", pixel_scale=1.0, pca_std=0.0),
}


def load_config_file(path: str | Path) -> dict:
    text = Path(path).read_text()
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: not valid {'JSON' if str(path).endswith('.json') else 'YAML'} ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys")
    return data


def build_config(preset: str | None = None, config_file: str | None = None, *,
                 flags: dict | None = None, **values) -> TrainConfig:
    """defaults <- preset <- file <- values <- flags. `values` are taken as given (None included:
    resize=None means native size); in `flags` (the command line) None means "not given"."""
    merged: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        merged.update(PRESETS[preset])
    if config_file:
        merged.update(load_config_file(config_file))
    merged.update(values)
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    values = merged
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; valid keys: {', '.join(sorted(known))}")
    return TrainConfig(**values).validate()
