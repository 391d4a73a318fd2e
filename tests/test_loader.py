"""The loader's host side: batches collated channels_last into shared memory in the workers (one
copy fewer on the way to the device), `--workers auto`, and full training batches only."""

import argparse

import pytest
import torch

from alexnet.cli import build_parser
from alexnet.cli.argtypes import workers_or_auto
from alexnet.data import Decoding, make_loader, open_dataset, resolve_workers
from alexnet.data import dataset as dataset_mod
from alexnet.data.dataset import stack_images
from alexnet.errors import BadInput
from alexnet.training import Trainer, build_config
from test_training import tiny


def hwc_images(n=3, h=5, w=4, seed=0):
    """What decoding gives: H, W, C bytes (Pillow's order) seen as C, H, W."""
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).permute(2, 0, 1) for _ in range(n)
    ]


@pytest.mark.parametrize("shared", [False, True])
def test_stack_is_channels_last_and_in_shared_memory_when_asked(shared):
    images = hwc_images()
    batch = stack_images(images, shared)
    assert torch.equal(batch, torch.stack(images)) and batch.shape == (3, 3, 5, 4)
    assert batch.is_contiguous(memory_format=torch.channels_last) and not batch.is_contiguous()
    assert batch.is_shared() == shared
    grey = stack_images([torch.zeros(1, 2, 2, dtype=torch.uint8)] * 2, shared)  # one channel: both layouts
    assert grey.shape == (2, 1, 2, 2) and grey.is_shared() == shared


def test_workers_send_batches_made_in_shared_memory(image_folder, monkeypatch):
    """In a worker the collate allocates the batch in shared memory itself, so the queue to the
    main process passes it without a copy; the main process gets the same pixels as it would
    decode itself, laid out channels_last."""
    ds = open_dataset(str(image_folder), "train", Decoding(40, 40))
    here = next(iter(make_loader(ds, 4, shuffle=False, workers=0)))
    there = next(iter(make_loader(ds, 4, shuffle=False, workers=1)))
    assert torch.equal(here.images, there.images) and torch.equal(here.labels, there.labels)
    assert there.images.is_shared() and not here.images.is_shared()
    assert there.images.is_contiguous(memory_format=torch.channels_last)


def test_workers_auto_by_device(monkeypatch):
    monkeypatch.setattr(dataset_mod, "cores", lambda: 16)
    assert resolve_workers("auto", "cuda") == 16 - dataset_mod.MAIN_CORES  # 14 on a 16-core H100 host
    assert resolve_workers("auto", "cuda:1", processes=8) == 1 and resolve_workers("auto", "cuda", 4) == 2
    assert resolve_workers("auto", "cpu") == dataset_mod.CPU_MAX_WORKERS == 4
    assert resolve_workers("auto", "cpu", processes=8) == 2
    assert resolve_workers(5, "cuda") == 5 and resolve_workers(0, "cpu") == 0  # a number is kept
    monkeypatch.setattr(dataset_mod, "cores", lambda: 2)
    assert resolve_workers("auto", "cuda") == 1  # never none on CUDA
    assert resolve_workers("auto", "cpu") == 2 and resolve_workers("auto", "cpu", processes=4) == 1


def test_commands_that_feed_a_device_default_to_workers_auto():
    """evaluate and bench data default to auto, train to its config's auto; all take a number or
    auto; the commands that only read files keep 2."""
    p = build_parser()
    evaluate, bench = ["evaluate", "--weights", "w", "--data", "d"], ["bench", "data", "--data", "d"]
    for argv in (evaluate, bench):
        assert p.parse_args(argv).workers == "auto"
        assert p.parse_args([*argv, "--workers", "3"]).workers == 3
    assert p.parse_args(["train", "--data", "d"]).cfg_workers is None  # unset: TrainConfig's auto
    assert p.parse_args(["train", "--data", "d", "--workers", "auto"]).cfg_workers == "auto"
    assert p.parse_args(["train", "--data", "d", "--workers", "3"]).cfg_workers == 3
    assert p.parse_args(["stats", "--data", "d", "--out", "s.pt"]).workers == 2


def test_trainer_resolves_auto_by_device(image_folder, tmp_path, monkeypatch):
    """The trainer turns auto into a number once, and both its loaders run that many workers."""
    monkeypatch.setattr(dataset_mod, "cores", lambda: 1)
    trainer = Trainer(tiny(image_folder, tmp_path / "run", workers="auto"), progress=False)
    assert trainer.workers == 1  # CPU: one per core, up to 4 (not tiny's 0, nor the old default 2)
    assert trainer.train_loader.num_workers == trainer.val_loader.num_workers == 1
    assert trainer.train_loader.drop_last and not trainer.val_loader.drop_last


def test_workers_flag_and_config_key():
    assert workers_or_auto("auto") == "auto" and workers_or_auto("3") == 3
    for bad in ("-1", "257", "many"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected auto or an integer 0..256"):
            workers_or_auto(bad)
    assert build_config(None, None, data="x").workers == "auto"
    with pytest.raises(BadInput, match="workers must be auto or between 0 and 256, got 'some'"):
        build_config(None, None, data="x", workers="some")
    with pytest.raises(BadInput, match="workers must be auto or between 0 and 256, got 300"):
        build_config(None, None, data="x", workers=300)


@pytest.mark.parametrize("batch,steps", [(5, 2), (16, 1)])
def test_training_drops_the_last_partial_batch(image_folder, tmp_path, batch, steps):
    """12 training images: at batch 5, two full batches an epoch (the other two images come in
    another epoch's order); a batch larger than the training set keeps its one partial batch."""
    trainer = Trainer(tiny(image_folder, tmp_path / "run", batch_size=batch, epochs=1), progress=False)
    seen = []
    real = trainer._step
    trainer._step = lambda b: seen.append(len(b.labels)) or real(b)
    assert trainer.fit()["steps"] == steps
    assert seen == ([5, 5] if batch == 5 else [12])
    assert trainer.val_loader.drop_last is False  # validation counts every image
