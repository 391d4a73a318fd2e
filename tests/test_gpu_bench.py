"""benchmarks/gpu.py end to end on CPU in --quick mode: every section runs or says why not, the
Markdown table is written, and the rows measured are real rates (numbers are not asserted)."""

import importlib.util
import re
from pathlib import Path

import torch

from alexnet.data.prepare import prepare

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_on_cpu_writes_the_table(image_folder, tmp_path, capsys):
    shards = tmp_path / "shards"
    prepare(str(image_folder), shards, resize=40, workers=0, progress=False)
    out = tmp_path / "bench.md"
    threads = torch.get_num_threads()
    try:
        rc = load_script().main(
            [
                "--device",
                "cpu",
                "--quick",
                "--batch-size",
                "1",
                "--data",
                str(image_folder),
                "--shards",
                str(shards),
                "--resize",
                "40",
                "--crop",
                "32",
                "--out",
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert rc == 0  # nothing failed
    md = out.read_text()
    assert "- device: CPU only" in md and "torch " + torch.__version__ in md
    rows = [line.split(" | ") for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    measured = {(r[0][2:], r[1], r[2]): r for r in rows}
    for key in [
        ("alexnet", "bf16", "eager"),
        ("torch-lrn", "bf16", "eager"),
        ("no-lrn", "bf16", "eager"),
        ("alexnet", "fp32", "conv1"),
        ("torch.nn.LocalResponseNorm", "bf16", "conv2"),
    ]:
        assert float(measured[key][3].replace(",", "")) > 0, key  # img/s or ms/step
    assert measured[("alexnet", "bf16", "eager")][5] == "1.00x"  # ours / ours
    loader = [r for r in rows if r[0] in ("| JPEG originals", "| prepared shards")]
    assert len(loader) == 2 and all(
        float(r[1].replace(",", "")) > 0 and float(r[2].replace(",", "")) > 0 for r in loader
    )
    # what cannot run here says why instead of pretending
    assert re.search(r"\| alexnet \| bf16 \| cuda-graph \|.*skipped: CUDA only", md)
    assert re.search(r"\| alexnet, LRN as torch ops \| fp32 \| eager \|.*skipped: CUDA only", md)
    assert re.search(r"\| alexnet \| bf16 \| compile \|.*skipped: --quick", md)
    assert re.search(r"\| alexnet \| fp32 \| eager \|.*skipped: --quick", md)
    assert "best mode" in capsys.readouterr().out


def test_cuda_graph_is_captured_thread_locally(monkeypatch):
    """A loader's pin-memory thread may still run CUDA calls (pinned allocations, copies) while
    the step is captured: global capture mode would fail on them, thread-local mode does not."""
    import contextlib

    seen = {}

    @contextlib.contextmanager
    def graph(g, **kwargs):
        seen.update(kwargs)
        yield

    class Graph:
        replay = "replay"

    cuda = torch.cuda
    monkeypatch.setattr(cuda, "graph", graph)
    monkeypatch.setattr(cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(cuda, "Stream", lambda: type("S", (), {"wait_stream": lambda self, s: None})())
    monkeypatch.setattr(
        cuda, "current_stream", lambda: type("S", (), {"wait_stream": lambda self, s: None})()
    )
    monkeypatch.setattr(cuda, "stream", lambda s: contextlib.nullcontext())
    steps = []
    assert load_script().cuda_graphed(lambda: steps.append(1)) == "replay"
    assert seen == {"capture_error_mode": "thread_local"} and len(steps) == 4  # 3 warm-up, 1 captured


def test_loader_rate_leaves_no_worker_behind(image_folder):
    """Before a CUDA graph is captured, the loader rows' workers (and pin-memory threads) are
    gone, also after a row that failed, whose traceback still holds the loader."""
    import multiprocessing

    import pytest

    from alexnet.bench import loader_rate
    from alexnet.data import Decoding, open_dataset

    ds = open_dataset(str(image_folder), "train", Decoding(40, 40))
    assert loader_rate(ds, len(ds), 4, 1, 32, epochs=1) > 0
    assert multiprocessing.active_children() == []
    with pytest.raises(ValueError, match="crop 64 is larger") as failed:  # in the first batch
        loader_rate(ds, len(ds), 4, 1, 64, epochs=1)
    assert failed.value.__traceback__ is not None and multiprocessing.active_children() == []
