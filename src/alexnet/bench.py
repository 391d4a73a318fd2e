"""`alexnet bench model`: img/s of a training or inference step, and how close it gets to the
machine's GEMM peak, measured in the same run."""
from __future__ import annotations

import os
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .analysis.summary import summarize
from .errors import BadInput

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class BenchConfig:
    model: str = "alexnet"
    batch_size: int = 64
    steps: int = 10
    warmup: int = 3
    mode: str = "train"  # or "infer"
    device: str = "cpu"
    channels_last: bool = False
    amp: str | None = None  # "bf16" | "fp16"
    compile: bool = False

    @property
    def precision(self) -> str:
        return self.amp or "fp32"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peak(device: torch.device, dtype: torch.dtype = torch.float32,
              sizes: tuple[int, ...] | None = None, reps: int = 5) -> float:
    """Best GFLOP/s of square matmuls over a few sizes: the yardstick for the model's rate."""
    sizes = sizes or ((4096, 8192) if device.type == "cuda" else (1024, 1536, 2048))
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(reps + 1):
            sync(device)
            t = time.perf_counter()
            a @ b
            sync(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


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
    x = torch.randn(cfg.batch_size, model.in_channels, model.input_size, model.input_size,
                    device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, model.num_classes, (cfg.batch_size,), device=device)
    run = torch.compile(model) if cfg.compile else model
    amp = (torch.autocast(device.type, dtype=AMP_DTYPES[cfg.amp]) if cfg.amp else nullcontext())
    if cfg.mode == "infer":
        model.eval()

        def step():
            with torch.inference_mode(), amp:
                run(x)
        return model, step

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16" and device.type == "cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = F.cross_entropy(run(x), y)
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
    return (f"{name:<12} {cfg.mode:<5} {cfg.device:<6} {cfg.precision:<4} batch {cfg.batch_size:<4} "
            f"{ips:9.1f} img/s  ({med * 1e3:8.1f} ms/step, median of {len(secs)})  "
            f"{rate:8.1f} GFLOP/s = {100 * rate / peak:5.1f}% of GEMM peak")


def run_model_bench(args) -> None:
    from .models import create_model
    from .runtime import tune_allocator

    cfg = BenchConfig(args.model, args.batch_size, args.steps, args.warmup, args.mode, args.device,
                      args.channels_last, args.amp, args.compile)
    if cfg.batch_size < 1 or cfg.steps < 1 or cfg.warmup < 0:
        raise ValueError("--batch-size and --steps must be >= 1 and --warmup >= 0")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {cfg.device}: CUDA is not available on this machine")
    tuned = tune_allocator()
    device = torch.device(cfg.device)
    model = create_model(cfg.model)
    flops = flops_per_image(model, cfg.mode)
    model, step = prepare(model, cfg)
    dtype = AMP_DTYPES.get(cfg.amp, torch.float32)
    peak = gemm_peak(device, dtype)
    times = time_interleaved({cfg.model: step}, cfg)
    peak = max(peak, gemm_peak(device, dtype))  # before and after: a busy moment lowers one of them
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"# torch {torch.__version__}, {cfg.device} ({threads} threads), "
          f"{cfg.precision} GEMM peak {peak:.0f} GFLOP/s, {flops / 1e9:.2f} GFLOP/img per "
          f"{cfg.mode} step, channels_last={cfg.channels_last}, compile={cfg.compile}, "
          f"malloc tuning={'on' if tuned else 'off'}")
    print(describe(cfg.model, times[cfg.model], cfg, flops, peak))


def naive_loop(source, n: int, crop: int = 227, resize: int | None = 256) -> float:
    """The per-image loop most tutorials write, doing the same work as our pipeline: decode,
    resize, random crop, flip, to float, PCA colour noise, mean subtraction, one image at a time
    in one process. Returns img/s."""
    import io

    import numpy as np
    from PIL import Image

    from .data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC

    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    eigval, eigvec = torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC)
    t = time.perf_counter()
    for i in range(n):
        try:
            img = Image.open(io.BytesIO(source.read(i))).convert("RGB")
        except (OSError, ValueError) as e:  # the tutorials' loop has no way to skip a file
            raise BadInput(f"{source.names[i]}: not a readable image ({e}); the naive loop needs every "
                           "image readable (--max-images fewer, or remove it)") from None
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
    from .data.decode import decode, open_image

    blobs = [(source.names[i], source.read(i)) for i in range(n)]
    rates = []
    for work in (lambda name, raw: open_image(raw, name, resize),
                 lambda name, raw: decode(raw, name, resize, resize)):
        wall, cpu, done = time.perf_counter(), time.thread_time(), 0
        for name, raw in blobs:
            work(name, raw)
            done += 1
            if time.perf_counter() - wall > max_seconds:
                break
        rates.append(done / max(time.thread_time() - cpu, 1e-9))
    return rates[0], rates[1], len(blobs)


def loader_rate(ds, n: int, batch_size: int, workers: int, crop: int, epochs: int = 2,
                device: str = "cpu", max_seconds: float | None = None) -> float:
    """img/s of our loader: `workers` processes decode + resize, the batches go to `device` as
    uint8 (pinned for CUDA) and the crop/flip/PCA noise/normalisation runs batched there. Timed
    over `epochs` passes (or max_seconds) after an untimed pass that starts the workers."""
    from torch.utils.data import Subset

    from .data import Normalizer, Pipeline, make_loader

    dev = torch.device(device)
    mean = [0.485, 0.456, 0.406] if ds.source.channels == 3 else [0.5] * ds.source.channels
    pipe = Pipeline(Normalizer(torch.tensor(mean), scale=255.0), crop=crop).to(dev)
    sub = Subset(ds, range(n))
    sub.source = ds.source  # make_loader reads the shard groups from here
    loader = make_loader(sub, batch_size, shuffle=False, workers=workers, pin_memory=dev.type == "cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    count, t = 0, None
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


def run_data_bench(args) -> None:
    """Our loader (workers decode + resize, batched augmentation in the main process) against
    the naive loop, on the same files, in one run; and what one core decodes per second."""
    from .data import Decoding, open_dataset
    from .data.sources import ArraySource
    from .precision import cpu_name
    from .runtime import tune_allocator

    if args.workers < 0 or args.batch_size < 1 or args.epochs < 1:
        raise ValueError("--workers must be >= 0, --batch-size and --epochs >= 1")
    tune_allocator()
    # the workers decode on their own cores; the batched augmentation takes what is left, and
    # more threads than cores only make the two fight (measured: 364 vs 486 img/s on 2 cores)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - args.workers))
    ds = open_dataset(args.data, args.split, Decoding(args.resize or None, args.resize or None))
    n = min(len(ds), args.max_images) if args.max_images else len(ds)
    ours = loader_rate(ds, n, args.batch_size, args.workers, args.crop, args.epochs)
    print(f"# {args.data} ({args.split}): {n} images x {args.epochs} timed passes after an untimed one, "
          f"{args.workers} workers, batch {args.batch_size}, "
          f"decode at {args.resize}, crop {args.crop}, torch threads {torch.get_num_threads()}, "
          f"CPU: {cpu_name()}")
    print(f"alexnet loader      {ours:8.1f} img/s  (decode+resize in workers, batched crop/flip/PCA/normalise)")
    if isinstance(ds.source, ArraySource):
        return  # arrays in memory: nothing to decode
    naive = naive_loop(ds.source, n, args.crop, args.resize or None)
    print(f"naive Pillow loop   {naive:8.1f} img/s  (one process, full decode)")
    print(f"speed-up            {ours / naive:8.2f}x")
    dec, dec_resize, _ = decode_rates(ds.source, n, args.resize or None)
    print(f"decode, one core    {dec:8.1f} img/s  (per CPU-second; JPEG draft scale as the loader decodes)")
    print(f"+ resize, one core  {dec_resize:8.1f} img/s  (per CPU-second; decode + resize + centre crop: "
          f"a worker's work per image)")

