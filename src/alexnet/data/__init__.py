"""From image files to normalised batches: sources, decoding, loading, augmentation, statistics."""

from .dataset import (
    Batch,
    Decoding,
    EpochSampler,
    ImageDataset,
    make_loader,
    open_dataset,
    open_source,
    resolve_workers,
)
from .folder import ImageFolder
from .preprocess import ImageTransform, create_transform
from .stats import compute_stats, load_stats, save_stats
from .transforms import TEN_CROP_ORDER, Normalizer, Pipeline

__all__ = [
    "Batch",
    "Decoding",
    "EpochSampler",
    "ImageDataset",
    "ImageFolder",
    "ImageTransform",
    "make_loader",
    "open_dataset",
    "open_source",
    "resolve_workers",
    "compute_stats",
    "create_transform",
    "load_stats",
    "save_stats",
    "Normalizer",
    "Pipeline",
    "TEN_CROP_ORDER",
]
