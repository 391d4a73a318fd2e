"""The data benchmark's per-core decode rate: images per CPU-second of one thread."""
import time

from alexnet import bench
from alexnet.bench import decode_rates
from alexnet.cli import main
from alexnet.data import decode as decode_mod
from alexnet.data import open_source


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
    assert main(["bench", "data", "--data", str(image_folder), "--workers", "0", "--batch-size", "4",
                 "--resize", "40", "--crop", "32", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "decode, one core" in out and "+ resize, one core" in out and "CPU: " in out
