"""The paper's training recipe (§5) and its descendants' presets, resumable and distributed."""

from .config import PRESETS, TrainConfig, build_config
from .guard import NonFiniteLoss, Stop
from .loop import Trainer, resume, train

__all__ = ["PRESETS", "TrainConfig", "build_config", "NonFiniteLoss", "Stop", "Trainer", "resume", "train"]
