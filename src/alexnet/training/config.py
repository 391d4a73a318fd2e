"""One config for a training run: defaults <- preset <- --config file <- command-line flags.

The resolved config is written to RUN/config.yaml and stored in every checkpoint, so a run can
be read, repeated and resumed from its folder alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import yaml

from ..devices import check_device
from ..errors import BadInput
from ..models import create_model, list_models
from ..precision import CHOICES as PRECISION_CHOICES
from ..untrusted import text as read_text
from .recipes import resolve

# settings that take one of a few words
CHOICES = {
    "mean": ("image", "channel"),
    "update_rule": ("paper", "torch"),
    "schedule": ("plateau", "step", "multistep", "constant"),
    "step_unit": ("epoch", "iter"),
    "precision": PRECISION_CHOICES,
    "eval_crops": ("center", "10"),
}


@dataclass
class TrainConfig:
    # what
    model: str = "alexnet"
    model_kw: dict = field(default_factory=dict)  # overrides for create_model (groups, init, ...)
    data: str = ""  # a path or a dataset name (cifar10, fashion-mnist)
    val_data: str | None = None  # default: the val/test split of `data`
    labels: str | None = None  # labels file for a flat validation folder
    # preprocessing (§2, §4.1)
    resize: int | None = 256  # shorter side stored; None: native size
    crop: int | None = None  # training crop; None: the model's input size
    mean: str = "image"  # "image" (per-pixel, paper) or "channel"
    stats: str | None = None  # `alexnet stats` file; None: computed into RUN/
    pixel_scale: float = 255.0  # network input = (pixels/255 - mean) * scale / std
    std: list | None = None
    flip: bool = True
    pca_std: float = 0.1  # §4.1 colour noise; 0 turns it off
    random_resized_crop: bool = False
    # optimisation (§5)
    epochs: int = 90
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    update_rule: str = "paper"  # "paper" (lr inside momentum) or "torch"
    bias_lr_mult: float = 1.0
    bias_decay: bool = True
    schedule: str = "plateau"  # "plateau", "step", "multistep" or "constant"
    gamma: float = 0.1
    patience: int = 2  # plateau: epochs without improvement
    max_drops: int = 3  # plateau: "reduced three times prior to termination"
    step_size: int = 30  # step: every step_size `step_unit`s
    step_unit: str = "epoch"  # "epoch" or "iter"
    milestones: list | None = None  # multistep: epochs after which lr *= gamma
    max_iters: int | None = None  # deprecated alias of max_steps (Caffe's max_iter)
    # machinery
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"  # auto (bf16 where native), fp32, bf16 or fp16
    channels_last: bool = True
    compile: bool = False
    cuda_graphs: bool = False  # CUDA: the step's kernels replayed as CUDA graphs
    workers: int | str = "auto"  # a number, or auto: by device (data.resolve_workers)
    eval_crops: str = "center"  # "center" or "10"
    run_dir: str = "runs/run"
    checkpoint_every: int = 0  # steps; 0: only at epoch ends (and on signals)
    max_steps: int | None = None  # the run's total optimiser steps (all invocations)
    log_every: int = 10  # steps between host reads and RUN/steps.csv rows
    val_every: int | None = None  # also validate every this many steps (and at the end)
    limit_batches: int | None = None  # batches per epoch (train and val), for smoke runs
    limit_train_batches: int | None = None  # training batches per epoch (wins over limit_batches)
    limit_val_batches: int | None = None  # validation batches (wins over limit_batches)
    target_train_error: float | None = None  # stop after the epoch that reaches it (Fig. 1)
    towers_on: str | None = None  # "cuda:0,cuda:1": model-parallel towers (§3.2)
    # fine-tuning
    init_from: str | None = None  # pretrained weights to start from
    train_layers: str | None = None  # "fc6,fc7,fc8" or "all" (default)
    lr_mult: dict = field(default_factory=dict)  # per layer, e.g. {"fc8": 10}
    decay_mult: dict = field(default_factory=dict)  # per layer, e.g. {"conv1": 0} (cuda-convnet's wc)

    # where each setting came from ("--lr", "recipe cifar10-quick ...", "the input size of ..."),
    # filled by build_config; informational, never read back as a setting
    resolved_from: dict = field(default_factory=dict)
    # drawn for each new run; RUN/config.yaml and its checkpoints carry it (--resume checks they agree)
    run_id: str | None = None

    def _key(self, key: str) -> str:
        """`config KEY`, and where its value came from when that was not the default."""
        src = self.resolved_from.get(key) if isinstance(self.resolved_from, dict) else None
        told = src and not str(src).startswith(("--", "argument"))  # a flag names itself
        return f"config {key}" + (f" (from {src})" if told else "")

    def validate(self) -> TrainConfig:
        """Types and ranges of every value, checked when the config is read (not deep inside
        training); raises BadInput naming the key (and the file it came from)."""
        for f in fields(self):
            _check_type(f.name, f.type, getattr(self, f.name))
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise BadInput(f"{self._key(key)}={getattr(self, key)!r}: expected one of {allowed}")
        if self.max_iters is not None:  # the old name of the run's total
            if self.max_steps is not None and self.max_steps != self.max_iters:
                raise BadInput(
                    f"config max_iters={self.max_iters} and max_steps={self.max_steps}: "
                    "max_iters is the old name of max_steps; give one"
                )
            self.max_steps, self.max_iters = self.max_iters, None
        for key, lo, hi in (
            ("epochs", 1, 10**6),
            ("batch_size", 1, 1 << 16),
            ("seed", 0, 2**32 - 1),
            ("resize", 1, 8192),
            ("crop", 1, 8192),
            ("max_iters", 1, 10**10),
            ("max_steps", 1, 10**10),
            ("limit_batches", 1, 10**10),
            ("log_every", 1, 10**6),
            ("limit_train_batches", 1, 10**10),
            ("limit_val_batches", 1, 10**10),
            ("val_every", 1, 10**10),
            ("checkpoint_every", 0, 10**10),
            ("step_size", 1, 10**10),
            ("patience", 0, 10**6),
            ("max_drops", 0, 10**6),
        ):
            v = getattr(self, key)
            if v is not None and not lo <= v <= hi:
                raise BadInput(f"{self._key(key)} must be between {lo} and {hi:,}, got {v}")
        if self.workers != "auto" and (isinstance(self.workers, str) or not 0 <= self.workers <= 256):
            raise BadInput(f"{self._key('workers')} must be auto or between 0 and 256, got {self.workers!r}")
        for key, lo, hi in (
            ("lr", 0.0, 1e3),
            ("momentum", 0.0, 1.0),
            ("weight_decay", 0.0, 1.0),
            ("pca_std", 0.0, 10.0),
            ("gamma", 0.0, 1.0),
            ("pixel_scale", 0.0, 1e4),
            ("bias_lr_mult", 0.0, 1e3),
        ):
            v = getattr(self, key)
            if not lo <= v <= hi or (key in ("lr", "pixel_scale", "gamma") and v == 0):
                raise BadInput(
                    f"{self._key(key)} must be in "
                    f"{'(' if key in ('lr', 'pixel_scale', 'gamma') else '['}"
                    f"{lo:g}, {hi:g}], got {v}"
                )
        if self.std is not None and (
            len(self.std) not in (1, 3) or not all(0 < v < math.inf for v in self.std)
        ):
            raise BadInput(f"{self._key('std')} must be 1 or 3 positive numbers, got {self.std}")
        if self.target_train_error is not None and not 0 <= self.target_train_error <= 1:
            raise BadInput(
                f"{self._key('target_train_error')} must be in [0, 1], got {self.target_train_error}"
            )
        if self.crop is not None and self.resize is not None and self.crop > self.resize:
            raise BadInput(
                f"config crop={self.crop} is larger than resize={self.resize}: the crop is "
                "taken from the stored image"
            )
        for key, d in (
            ("model_kw", self.model_kw),
            ("lr_mult", self.lr_mult),
            ("decay_mult", self.decay_mult),
        ):
            if any(not isinstance(k, str) for k in d):
                raise BadInput(f"{self._key(key)} must map names to values, got {d!r}")
        for key, d in (("lr_mult", self.lr_mult), ("decay_mult", self.decay_mult)):
            bad = {
                k: v
                for k, v in d.items()
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1e3
            }
            if bad:  # NaN, 1e999 or -5 would train (or diverge) before anyone noticed
                src = self.resolved_from.get(key) if isinstance(self.resolved_from, dict) else None
                where = src if isinstance(src, str) and src.startswith("--") else self._key(key)
                raise BadInput(f"{where}: each multiplier must be a number in [0, 1000], got {bad!r:.120}")
        if self.milestones is not None and (
            not all(isinstance(m, int) and 1 <= m <= 10**6 for m in self.milestones)
            or self.milestones != sorted(set(self.milestones))
        ):
            raise BadInput(
                f"{self._key('milestones')} must be increasing epoch numbers (1..10^6), got {self.milestones}"
            )
        if self.schedule == "multistep" and not self.milestones:
            raise BadInput(
                f"{self._key('schedule')}=multistep needs milestones (the epochs after which "
                "the learning rate drops), e.g. --milestones 80 90"
            )
        if self.model not in list_models():
            raise BadInput(f"config model={self.model!r}: valid names: {', '.join(list_models())}")
        _check_model_kw(self)
        if not self.run_dir.strip():
            raise BadInput("--run-dir '': empty; expected a folder for the run")
        check_device(self.device)
        if self.cuda_graphs and not self.device.startswith("cuda"):
            raise BadInput(f"--cuda-graphs: CUDA graphs need a CUDA device, got --device {self.device}")
        if self.towers_on is not None:
            towers = [d.strip() for d in self.towers_on.split(",")]
            if len(towers) != 2:
                raise BadInput(f"--towers-on {self.towers_on}: expected two devices, e.g. cuda:0,cuda:1")
            for d in towers:
                check_device(d, "--towers-on")
        if Path(self.run_dir).exists() and not Path(self.run_dir).is_dir():
            raise BadInput(f"--run-dir {self.run_dir}: is a file; expected a folder for the run")
        if not self.data:
            raise BadInput("no training data: give --data PATH (or a preset that names one)")
        return self

    @property
    def train_batches(self) -> int | None:
        """Training batches per epoch at most (None: all)."""
        return self.limit_train_batches or self.limit_batches

    @property
    def val_batches(self) -> int | None:
        """Validation batches at most (None: all)."""
        return self.limit_val_batches or self.limit_batches

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _check_type(key: str, annotation: str, value: object, source: str | None = None) -> None:
    """`annotation` is the field's type as written ("int | None", "float", "dict", ...)."""
    kinds = [t.strip() for t in str(annotation).split("|")]
    if value is None and "None" in kinds:
        return
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "dict": lambda v: isinstance(v, dict),
        "list": lambda v: (
            isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        ),
    }
    if not any(ok[k](value) for k in kinds if k in ok):
        want = " or ".join("a list of numbers" if k == "list" else k for k in kinds)
        where = f" (from {source})" if source and not source.startswith(("--", "argument")) else ""
        raise BadInput(f"config {key}{where}: expected {want}, got {type(value).__name__} {value!r:.80}")


def _check_model_kw(cfg: TrainConfig) -> None:
    """The model options are tried on the meta device (no memory) when the config is read."""
    taken = sorted({"num_classes", "in_channels"} & set(cfg.model_kw))
    if taken:
        raise BadInput(f"{cfg._key('model_kw')}: {', '.join(taken)} come(s) from the data, not from model_kw")
    try:
        with torch.device("meta"):
            create_model(cfg.model, **cfg.model_kw)
    except (TypeError, ValueError) as e:
        raise BadInput(f"{cfg._key('model_kw')}={cfg.model_kw!r:.120}: {e}") from None


PRESETS: dict[str, dict] = {
    # §5: SGD, momentum 0.9, weight decay 5e-4, batch 128, lr 0.01 divided by 10 when the
    # validation error stopped improving (three times), roughly 90 cycles
    "paper": dict(
        model="alexnet",
        epochs=90,
        batch_size=128,
        lr=0.01,
        schedule="plateau",
        update_rule="paper",
        mean="image",
        pca_std=0.1,
    ),
    # bvlc_alexnet solver.prototxt: base_lr 0.01, step 100000 x0.1, 450000 iterations, batch 256,
    # bias lr_mult 2 and decay_mult 0; torch-style momentum as in Caffe
    "caffe": dict(
        model="alexnet_caffe",
        batch_size=256,
        lr=0.01,
        schedule="step",
        step_unit="iter",
        step_size=100_000,
        max_iters=450_000,
        epochs=1000,
        update_rule="torch",
        bias_lr_mult=2.0,
        bias_decay=False,
        pca_std=0.0,
    ),
    # torchvision's reference recipe for alexnet: lr 0.01, x0.1 every 30 epochs, 90 epochs
    "owt": dict(
        model="alexnet_owt",
        batch_size=128,
        lr=0.01,
        schedule="step",
        step_size=30,
        epochs=90,
        update_rule="torch",
        mean="channel",
        pixel_scale=1.0,
        pca_std=0.0,
        std=[0.229, 0.224, 0.225],
        random_resized_crop=True,
    ),
    # d2l chapter 8.1: Fashion-MNIST resized to 224, lr 0.01, batch 128, 10 epochs, plain SGD
    "d2l": dict(
        model="alexnet_d2l",
        data="fashion-mnist",
        resize=224,
        crop=224,
        epochs=10,
        batch_size=128,
        lr=0.01,
        momentum=0.0,
        weight_decay=0.0,
        schedule="constant",
        update_rule="torch",
        mean="channel",
        pixel_scale=1.0,
        pca_std=0.0,
        flip=False,
    ),
    # the Keras BatchNorm AlexNet's regulariser: l2(2e-4) on every kernel adds 2e-4 * w^2 to the
    # loss, i.e. weight decay 4e-4, and nothing on biases or BN's gamma/beta (bias_decay=False)
    "keras-bn": dict(
        model="alexnet_bn", weight_decay=4e-4, bias_decay=False, update_rule="torch", pca_std=0.0
    ),
    # §3.3's CIFAR-10 net as cuda-convnet's layer-params-conv-local-11pct.cfg trains it: epsW 0.001
    # (epsB 0.002), momW/momB 0.9 with eps inside the momentum (weights.cuh: inc = mom inc + eps
    # grad/batch - eps wc w), wc 0 on conv1/conv2 and 0.004 on local3/local4/fc, none on biases;
    # batch 128 of 24x24 random crops + flips of the 0-255 images minus the mean image. The
    # published schedule (~450 epochs, then ÷10 for 10 and ÷10 for 10) is shortened to fit a CPU
    # (docs/experiments.md measures what that costs); fp32: bf16 is slower on these small layers.
    "cuda-convnet": dict(
        model="cifar_local_11pct",
        data="cifar10",
        resize=None,
        crop=24,
        epochs=80,
        batch_size=128,
        lr=0.001,
        momentum=0.9,
        weight_decay=0.004,
        decay_mult={"conv1": 0.0, "conv2": 0.0},
        update_rule="paper",
        bias_lr_mult=2.0,
        bias_decay=False,
        schedule="multistep",
        milestones=[60, 70],
        gamma=0.1,
        mean="image",
        pixel_scale=255.0,
        flip=True,
        pca_std=0.0,
        precision="fp32",
    ),
    # the four-layer net of Fig. 1 on CIFAR-10 at 32x32: minutes on a laptop CPU
    "cifar10-quick": dict(
        model="cifar_convnet",
        data="cifar10",
        resize=None,
        crop=32,
        epochs=6,
        batch_size=128,
        lr=0.05,
        schedule="step",
        step_size=4,
        update_rule="torch",
        weight_decay=5e-4,
        mean="image",
        pixel_scale=1.0,
        pca_std=0.0,
    ),
}


NOT_SETTINGS = ("resolved_from", "run_id")  # TrainConfig fields that no flag or config file sets
MAX_CONFIG_BYTES = 1 << 20  # a config is a page of settings, not a data file
MAX_YAML_NODES = 100_000  # after alias expansion: stops "billion laughs" alias trees


def load_config_file(path: str | Path, flag: str = "--config") -> dict:
    """A YAML or JSON mapping of config keys (a --config file, a run's config.yaml), refusing
    anything but a small regular text file and YAML alias trees; values are checked later."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise BadInput(f"{where}: is a folder; expected a YAML or JSON file of config keys")
    try:
        text = read_text(path, where, MAX_CONFIG_BYTES)
    except BadInput as e:
        if "UTF-8" in str(e):
            raise BadInput(f"{where}: not a text file; expected YAML or JSON") from None
        raise
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        if kind == "JSON":
            data = json.loads(text)
        else:
            _check_yaml_size(text, where)
            data = yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, RecursionError) as e:
        raise BadInput(f"{where}: not valid {kind} ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{where}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def _check_yaml_size(text: str, path: Path | str) -> None:
    """Count the nodes the document expands to (aliases counted at full size) before building it."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    sizes: dict[int, int] = {}

    def size(node) -> int:
        if id(node) in sizes:  # an alias: the same node again, its full size again
            return sizes[id(node)]
        sizes[id(node)] = 1  # cycles (recursive aliases) count once
        if isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            n = 1
        sizes[id(node)] = n
        if n > MAX_YAML_NODES:
            raise BadInput(f"{path}: expands to more than {MAX_YAML_NODES:,} values (nested YAML aliases?)")
        return n

    if root is not None:
        size(root)


def native_zero(key: str, value: object) -> object:
    """resize: 0 and crop: 0 in a config file mean what --resize 0 and --crop 0 mean: the data's
    native size, the model's input size (None, as a run's config.yaml stores them)."""
    return None if key in ("resize", "crop") and type(value) is int and value == 0 else value


def build_config(
    preset: str | None = None,
    config_file: str | None = None,
    *,
    flags: dict | None = None,
    values_from: str = "argument",
    **values,
) -> TrainConfig:
    """defaults <- the model's recipe or the preset <- file <- values <- flags, then the crop
    and stored size derived from the model and the data (training/recipes.py). `values` are
    taken as given (None included: resize=None means native size); in `flags` (the command line)
    None means "not given"."""
    explicit: dict[str, tuple[object, str]] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise BadInput(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        explicit.update({k: (v, f"preset {preset}") for k, v in PRESETS[preset].items()})
    if config_file:  # another run's config.yaml repeats its settings, not its identity
        explicit.update(
            {
                k: (native_zero(k, v), str(config_file))
                for k, v in load_config_file(config_file).items()
                if k not in NOT_SETTINGS
            }
        )
    explicit.update({k: (v, values_from) for k, v in values.items()})
    explicit.update({k: (v, "--" + k.replace("_", "-")) for k, v in (flags or {}).items() if v is not None})
    explicit.pop("resolved_from", None)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(explicit) - known)
    if unknown:
        sources = sorted({str(explicit[k][1]) for k in unknown})
        raise BadInput(
            f"unknown config key(s) {unknown} (from {', '.join(sources)}); valid keys: "
            f"{', '.join(sorted(known))}"
        )
    types = {f.name: f.type for f in fields(TrainConfig)}
    for k, (v, src) in explicit.items():
        _check_type(k, types[k], v, str(src))
    defaults = TrainConfig().to_dict()
    resolved, source = resolve(explicit, preset, PRESETS, defaults)
    resolved["resolved_from"] = {k: v for k, v in source.items() if v != "default"}
    return TrainConfig(**resolved).validate()
