"""`alexnet bench model`: img/s of a training or inference step, and how close it gets to the
machine's peak, measured in the same run with the kernels the network itself runs."""

from __future__ import annotations

import copy
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import Subset

from .analysis.summary import layer_macs, summarize
from .data import Decoding, Normalizer, Pipeline, make_loader, open_dataset, resolve_workers
from .data.dataset import cores, shutdown, stack_images
from .data.decode import decode, open_image
from .data.sources import ArraySource
from .data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC
from .devices import check_device
from .errors import BadInput, shown
from .models import create_model
from .precision import AMP_DTYPES, autocast, cpu_name, describe_cpu, resolve_precision
from .runtime import tune_allocator
from .training.config import TrainConfig
from .training.optim import make_optimizer


@dataclass
class BenchConfig:
    model: str = "alexnet"
    batch_size: int = 64
    steps: int = 10
    warmup: int = 3
    mode: str = "train"  # or "infer"
    device: str = "cpu"
    channels_last: bool = False
    precision: str = "fp32"  # resolved: fp32 | bf16 | fp16 (autocast)
    compile: bool = False


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    best = float("inf")
    for _ in range(reps + 1):  # the first run warms caches and picks kernels
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def gemm_peak(
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    sizes: tuple[int, ...] | None = None,
    reps: int = 5,
) -> float:
    """Best GFLOP/s of square matmuls over a few sizes."""
    sizes = sizes or ((4096, 8192) if device.type == "cuda" else (1024, 2048))
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        best = max(best, 2 * n**3 / _best_seconds(lambda a=a, b=b: a @ b, device, reps) / 1e9)
    return best


def layer_probes(model: nn.Module, cfg: BenchConfig) -> list[tuple[str, Callable[[], object], float]]:
    """(name, run, FLOPs) for each convolution and fully connected layer of `model`, alone, at the
    benchmark's batch size, dtype and memory format: the kernels the step itself runs."""
    device, dtype = torch.device(cfg.device), AMP_DTYPES.get(cfg.precision, torch.float32)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    found: list[tuple[str, nn.Module, tuple[int, ...], int]] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module, inp, out):
        found.append((names[module], module, tuple(inp[0].shape[1:]), layer_macs(module, out)))

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training, where = model.training, next(model.parameters()).device
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, model.in_channels, model.input_size, model.input_size, device=where))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    probes = []
    for name, module, shape, macs in found:
        layer = copy.deepcopy(module).to(device, dtype)
        x = torch.randn(cfg.batch_size, *shape, device=device, dtype=dtype)
        if x.dim() == 4:
            layer, x = layer.to(memory_format=fmt), x.contiguous(memory_format=fmt)

        def run(layer=layer, x=x):
            with torch.no_grad():
                return layer(x)

        probes.append((name, run, 2.0 * macs * cfg.batch_size))
    return probes


def kernel_peak(model: nn.Module, cfg: BenchConfig, reps: int = 2) -> tuple[float, str]:
    """(GFLOP/s, which) of the fastest probe: each conv/fc layer of the network alone, forward,
    and a square GEMM, all in the benchmark's dtype and memory format. The step runs these same
    kernels (and slower ones: backward, pooling, the update), so it cannot beat their best."""
    device, dtype = torch.device(cfg.device), AMP_DTYPES.get(cfg.precision, torch.float32)
    best, which = gemm_peak(device, dtype, reps=reps), "square GEMM"
    for name, run, flops in layer_probes(model, cfg):
        rate = flops / _best_seconds(run, device, reps) / 1e9
        if rate > best:
            best, which = rate, f"{name} alone"
    return best, which


def flops_per_image(model: nn.Module, mode: str) -> float:
    """2 FLOPs per multiply-accumulate. A training step is forward + weight gradients + input
    gradients, each as many MACs as the forward, except that the image needs no gradient: the
    first layer's input-gradient GEMM is never run."""
    rows = [r for r in summarize(model) if r.macs]
    macs = sum(r.macs for r in rows)
    return 2 * (3 * macs - rows[0].macs if mode == "train" else macs)


def prepare(model: nn.Module, cfg: BenchConfig) -> tuple[nn.Module, Callable[[], None]]:
    """Move/format/compile the model and return a closure that runs one step on a fixed batch."""
    device = torch.device(cfg.device)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    x = torch.randn(
        cfg.batch_size, model.in_channels, model.input_size, model.input_size, device=device
    ).contiguous(memory_format=fmt)
    y = torch.randint(0, model.num_classes, (cfg.batch_size,), device=device)
    run = torch.compile(model) if cfg.compile else model
    amp = autocast(cfg.precision, device)
    if cfg.mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode(), amp:
                run(x)

        return model, step

    model.train()
    opt = make_optimizer(model, TrainConfig(lr=1e-3))  # the paper's update, as `alexnet train` runs it
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16" and device.type == "cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = F.cross_entropy(run(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return model, step


def time_interleaved(steps: dict[str, Callable[[], None]], cfg: BenchConfig) -> dict[str, list[float]]:
    """Seconds per step for each entry, taking turns step by step so that drifts in the machine's
    speed (other load, thermal) fall on all of them alike."""
    device = torch.device(cfg.device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for i in range(cfg.warmup + cfg.steps):
        for name, step in steps.items():
            sync(device)
            t = time.perf_counter()
            step()
            sync(device)
            if i >= cfg.warmup:
                times[name].append(time.perf_counter() - t)
    return times


def describe(name: str, secs: list[float], cfg: BenchConfig, flops: float, peak: float) -> str:
    med = statistics.median(secs)
    ips = cfg.batch_size / med
    rate = flops * ips / 1e9
    return (
        f"{name:<12} {cfg.mode:<5} {cfg.device:<6} {cfg.precision:<4} batch {cfg.batch_size:<4} "
        f"{ips:9.1f} img/s  ({med * 1e3:8.1f} ms/step, median of {len(secs)})  "
        f"{rate:8.1f} GFLOP/s = {100 * rate / peak:.3g}% of peak"
    )


def machine_line(device: torch.device) -> str:
    if device.type == "cuda":
        return f"# {torch.cuda.get_device_name(device)}; host CPU {describe_cpu()}"
    return f"# CPU: {describe_cpu()}"


def run_model_bench(
    model: str = "alexnet",
    mode: str = "train",
    batch_size: int = 64,
    steps: int = 10,
    warmup: int = 3,
    device: str = "cpu",
    channels_last: bool = False,
    precision: str = "auto",
    compile: bool = False,
) -> None:
    """Print img/s of `model`'s training or inference step and its share of the kernels' peak;
    `precision` as `train --precision` (auto: bf16 where the device multiplies it natively)."""
    check_device(device)
    resolved, why = resolve_precision(precision, device)
    why = f"precision {precision} -> {resolved} ({why})"
    cfg = BenchConfig(model, batch_size, steps, warmup, mode, device, channels_last, resolved, compile)
    tuned = tune_allocator()
    device = torch.device(cfg.device)
    model = create_model(cfg.model)
    flops = flops_per_image(model, cfg.mode)
    peak, which = kernel_peak(model, cfg)
    model, step = prepare(model, cfg)
    times = time_interleaved({cfg.model: step}, cfg)
    after = kernel_peak(model, cfg)  # before and after: a busy moment lowers one of them
    peak, which = max((peak, which), after)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(machine_line(device))
    print(
        f"# torch {torch.__version__}, {cfg.device} ({threads} threads), {why}; {cfg.precision} peak "
        f"{peak:.0f} GFLOP/s ({which}, the best of the network's conv/fc layers alone and a square "
        f"GEMM), {flops / 1e9:.2f} GFLOP/img per {cfg.mode} step, channels_last={cfg.channels_last}, "
        f"compile={cfg.compile}, malloc tuning={'on' if tuned else 'off'}"
    )
    print(describe(cfg.model, times[cfg.model], cfg, flops, peak))


def naive_loop(source, n: int, crop: int = 227, resize: int | None = 256) -> float:
    """The per-image loop most tutorials write, doing the same work as our pipeline: decode,
    resize, random crop, flip, to float, PCA colour noise, mean subtraction, one image at a time
    in one process. Returns img/s."""
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    eigval, eigvec = torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC)
    t = time.perf_counter()
    for i in range(n):
        try:
            img = Image.open(io.BytesIO(source.read(i))).convert("RGB")
        except (OSError, ValueError) as e:  # the tutorials' loop has no way to skip a file
            raise BadInput(
                f"{shown(source.names[i])}: not a readable image ({e}); the naive loop needs "
                "every image readable (--max-images fewer, or remove it)"
            ) from None
        if resize:
            w, h = img.size
            s = resize / min(w, h)
            img = img.resize((max(resize, round(w * s)), max(resize, round(h * s))), Image.BILINEAR)
        left, top = np.random.randint(0, img.size[0] - crop + 1), np.random.randint(0, img.size[1] - crop + 1)
        img = img.crop((left, top, left + crop, top + crop))
        if np.random.rand() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255
        x = (x + (eigvec @ (torch.randn(3) * 0.1 * eigval))[:, None, None] - mean) * 255  # §4.1 noise
        assert x.shape == (3, crop, crop)
    return n / (time.perf_counter() - t)


def decode_rates(source, n: int, resize: int | None, max_seconds: float = 20.0) -> tuple[float, float, int]:
    """Images per CPU-second ONE core turns stored bytes into (a) decoded pixels, at the draft
    scale the loader uses, and (b) the loader's fixed-size uint8 tensor (decode + resize + centre
    crop): the per-worker budget, without disk or IPC (the bytes are read beforehand). Counted in
    this thread's CPU time, so other load on a shared machine does not lower it. Each loop stops
    after max_seconds of wall time. Returns (decode img/s, decode+resize img/s, images read)."""
    blobs = [(source.names[i], source.read(i)) for i in range(n)]
    rates = []
    for work in (
        lambda name, raw: open_image(raw, name, resize),
        lambda name, raw: decode(raw, name, resize, resize),
    ):
        wall, cpu, done = time.perf_counter(), time.thread_time(), 0
        for name, raw in blobs:
            work(name, raw)
            done += 1
            if time.perf_counter() - wall > max_seconds:
                break
        rates.append(done / max(time.thread_time() - cpu, 1e-9))
    return rates[0], rates[1], len(blobs)


TARGET = 20_000  # img/s: training `alexnet` in bf16 on one H100 (issue 13); not yet measured


def loader_rate(
    ds,
    n: int,
    batch_size: int,
    workers: int,
    crop: int,
    epochs: int = 2,
    device: str = "cpu",
    max_seconds: float | None = None,
) -> float:
    """img/s of our loader: `workers` processes decode + resize, the batches go to `device` as
    uint8 (pinned for CUDA) and the crop/flip/PCA noise/normalisation runs batched there, emitting
    channels_last batches as `alexnet train` does. Timed over `epochs` passes (or max_seconds)
    after an untimed pass that starts the workers; the workers and the pin-memory thread are
    stopped before it returns (a CUDA graph captured after must not meet them)."""
    dev = torch.device(device)
    mean = [0.485, 0.456, 0.406] if ds.source.channels == 3 else [0.5] * ds.source.channels
    pipe = Pipeline(Normalizer(torch.tensor(mean), scale=255.0), crop=crop, channels_last=True).to(dev)
    sub = Subset(ds, range(n))
    sub.source = ds.source  # make_loader reads the shard groups from here
    loader = make_loader(sub, batch_size, shuffle=False, workers=workers, pin_memory=dev.type == "cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    count, t = 0, None
    try:
        for _ in range(1 + epochs):
            for batch in loader:
                images = pipe.train(batch.images.to(dev, non_blocking=True), gen)
                if t is not None:
                    count += len(images)
                    if max_seconds and time.perf_counter() - t > max_seconds:
                        break
            if t is None:  # the untimed pass is over
                sync(dev)
                t = time.perf_counter()
            elif max_seconds and time.perf_counter() - t > max_seconds:
                break
        sync(dev)
        return count / (time.perf_counter() - t)
    finally:
        shutdown(loader)


def copy_times(ds, batch_size: int, rounds: int = 10) -> dict[str, float]:
    """CPU milliseconds (this thread's, best of `rounds`) per batch of the host copies between
    decoded images and the device: the workers' collate straight into shared memory, which the
    queue passes on without copying; what it replaced (an NCHW stack in ordinary memory, then the
    queue's copy of it into shared memory); and, with CUDA, the pin-memory thread's copy."""
    images = [x for x in (ds[i][0] for i in range(min(len(ds), batch_size))) if x is not None]
    if not images:
        raise BadInput("no readable image among the first batch: nothing to copy")

    def best(work, make=lambda: images) -> float:
        times = []
        for _ in range(rounds):
            x = make()
            t = time.thread_time()
            work(x)
            times.append(time.thread_time() - t)
        return 1e3 * min(times)

    out = {
        "collate into shared memory": best(lambda x: stack_images(x, shared=True)),
        "before: stack NCHW": best(torch.stack),
        "before: queue copy into shared memory": best(
            lambda b: b.share_memory_(), lambda: torch.stack(images)
        ),
    }
    if torch.cuda.is_available():
        out["pin"] = best(lambda b: b.pin_memory(), lambda: stack_images(images))
    return out


def run_data_bench(
    data: str,
    split: str = "train",
    max_images: int | None = None,
    resize: int | None = 256,
    crop: int = 227,
    workers: int | str = "auto",
    batch_size: int = 64,
    epochs: int = 2,
) -> None:
    """Print img/s of our loader (workers decode + resize, batched augmentation in the main
    process) against the naive loop, on the same files, in one run; img/s per worker, what one
    core decodes per second, and the host copies per batch. resize None: the native size."""
    workers = resolve_workers(workers, "cpu")
    if workers < 0 or batch_size < 1 or epochs < 1:
        raise ValueError("--workers must be >= 0, --batch-size and --epochs >= 1")
    tune_allocator()
    # the workers decode on their own cores; the batched augmentation takes what is left, and
    # more threads than cores only make the two fight (measured: 364 vs 486 img/s on 2 cores)
    torch.set_num_threads(max(1, cores() - workers))
    ds = open_dataset(data, split, Decoding(resize, resize))
    n = min(len(ds), max_images) if max_images else len(ds)
    ours = loader_rate(ds, n, batch_size, workers, crop, epochs)
    print(
        f"# {data} ({split}): {n} images x {epochs} timed passes after an untimed one, "
        f"{workers} workers, batch {batch_size}, decode at {resize or 'native size'}, crop {crop}, "
        f"torch threads {torch.get_num_threads()}, CPU: {cpu_name()}"
    )
    per = f"{ours / workers:.1f} img/s per worker" if workers else "decoded in the main process"
    print(
        f"alexnet loader      {ours:8.1f} img/s  ({per}; decode+resize in workers, batched "
        f"crop/flip/PCA/normalise)"
    )
    ms = copy_times(ds, batch_size)
    collate = ms["collate into shared memory"]
    pin = f"; pinning {ms['pin']:.1f} ms more" if "pin" in ms else " (pinning: CUDA only)"
    print(
        f"host copies         {collate:8.1f} ms CPU per batch of {batch_size}: the "
        f"workers' collate into shared memory{pin}; before: {ms['before: stack NCHW']:.1f} ms to stack "
        f"+ {ms['before: queue copy into shared memory']:.1f} ms for the queue's copy into shared memory"
    )
    if isinstance(ds.source, ArraySource):
        return  # arrays in memory: nothing to decode
    naive = naive_loop(ds.source, n, crop, resize)
    print(f"naive Pillow loop   {naive:8.1f} img/s  (one process, full decode)")
    print(f"speed-up            {ours / naive:8.2f}x")
    dec, dec_resize, _ = decode_rates(ds.source, n, resize)
    print(f"decode, one core    {dec:8.1f} img/s  (per CPU-second; JPEG draft scale as the loader decodes)")
    print(
        f"+ resize, one core  {dec_resize:8.1f} img/s  (per CPU-second; decode + resize + centre crop: "
        f"a worker's work per image)"
    )
    per_image = 1 / dec_resize + collate / 1e3 / batch_size  # CPU seconds per image in a worker
    print(
        f"for {TARGET:,} img/s   {TARGET * per_image:8.1f} workers at this CPU's rate "
        f"({1e3 * per_image:.2f} ms "
        f"CPU per image: decode + resize + collate; the GPU plan in docs/benchmarks.md)"
    )
