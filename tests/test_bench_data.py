"""The data benchmark: per-core decode rate (images per CPU-second of one thread), img/s per
worker and the host copies per batch."""

import re
import time

import pytest

from alexnet import bench
from alexnet.bench import copy_times, decode_rates
from alexnet.cli import main
from alexnet.data import Decoding, open_dataset, open_source
from alexnet.data import decode as decode_mod


def test_decode_rate_counts_images_per_cpu_second(image_folder, monkeypatch):
    real = decode_mod.open_image

    def slow_open(data, name, resize=None, max_pixels=decode_mod.DEFAULT_MAX_PIXELS):
        t = time.thread_time()
        while time.thread_time() - t < 0.01:  # 10 ms of this thread's CPU per image
            pass
        return real(data, name, resize, max_pixels)

    monkeypatch.setattr(decode_mod, "open_image", slow_open)  # decode() calls it
    monkeypatch.setattr(bench, "open_image", slow_open)
    source = open_source(str(image_folder), "train")
    dec, dec_resize, n = decode_rates(source, len(source), 40)
    assert n == 12
    assert 20 < dec <= 100 and 20 < dec_resize <= 100  # <= 1 image per 10 ms of CPU, whatever the load


def test_bench_data_prints_per_core_decode(image_folder, capsys):
    assert (
        main(
            [
                "bench",
                "data",
                "--data",
                str(image_folder),
                "--workers",
                "2",
                "--batch-size",
                "4",
                "--resize",
                "40",
                "--crop",
                "32",
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "decode, one core" in out and "+ resize, one core" in out and "CPU: " in out
    assert "12 images x 1 timed passes after an untimed one, 2 workers, batch 4" in out
    total, per = map(
        float, re.search(r"alexnet loader +([\d.]+) img/s +\(([\d.]+) img/s per worker", out).groups()
    )
    assert per == pytest.approx(total / 2, abs=0.06)  # both printed to 0.1
    assert re.search(
        r"host copies +[\d.]+ ms CPU per batch of 4: .*before: [\d.]+ ms to stack \+ [\d.]+ ms", out
    )


def test_copy_times_measure_each_copy(image_folder):
    """CPU time per batch of each host copy: the collate into shared memory, and the two copies
    it replaced (an NCHW stack, then the queue's copy into shared memory)."""
    ds = open_dataset(str(image_folder), "train", Decoding(40, 40))
    ms = copy_times(ds, 8, rounds=3)
    assert set(ms) == {
        "collate into shared memory",
        "before: stack NCHW",
        "before: queue copy into shared memory",
    }
    assert all(0 < v < 1000 for v in ms.values()), ms
