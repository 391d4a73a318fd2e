"""Compile every Triton kernel configuration the package launches for real GPUs, without one.

    python tests/triton_targets.py [--targets 80 90] [--jobs 2]     # prints one JSON line

The configurations are not listed by hand: the networks that have an LRN layer (the paper's,
CaffeNet's, ...) run forward and backward on the data-less "meta" device in each dtype the Triton
LRN takes, NCHW and channels_last, at batch sizes 1 to 1024, with the wrapper's launch replaced by
a recorder of what it would launch (lrn_triton.launch_args); the paper's update kernel is recorded
for each parameter of each network (training/sgd_triton.launch_args). Triton's own binder turns
each launch into the specialisation a GPU run would compile (dtypes, integer arguments equal to 1
or divisible by 16, 16-byte aligned pointers as the CUDA allocator returns them, constexprs);
equal ones are compiled once per target by Triton's compiler and ptxas, whose report gives the
registers and spill bytes. Results are cached by Triton version, kernel source and specialisation
(in $ALEXNET_CACHE, as the C kernels), so an unchanged kernel is not compiled again.

Runs without TRITON_INTERPRET (the kernels must be JIT functions): tests/test_lrn_triton.py starts
it in a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import multiprocessing
import os
import re
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.compiler import make_backend
from triton.runtime.jit import MockTensor, create_function_from_signature

from alexnet.models import create_model, list_models
from alexnet.nn import lrn as lrn_mod
from alexnet.nn import lrn_triton
from alexnet.nn.native import cache_dir
from alexnet.training import sgd_triton

BATCHES = (1, 2, 3, 127, 128, 143, 256, 1000, 1024)  # the ends, powers of two, a last partial batch


def lrn_launches(batches=BATCHES) -> list[tuple]:
    """(kernel, args, kwargs) of every LRN launch the networks make, forward and backward."""
    seen = []
    real_path, real_launch = lrn_mod._triton_path, lrn_triton._launch
    lrn_mod._triton_path = lambda x: x.dtype in lrn_triton.DTYPES  # meta tensors take the GPU path

    def record(kernel, tile, tensors, *rest):
        planned = lrn_triton.launch_args(kernel, tile, tensors, *rest)
        if planned is not None:
            seen.append((kernel, planned[1], planned[2]))

    lrn_triton._launch = record
    try:
        for name in list_models():
            with torch.device("meta"):
                model = create_model(name)
            norms = [m for m in model.modules() if isinstance(m, lrn_mod.LocalResponseNorm)]
            if not norms:
                continue  # e.g. torchvision's AlexNet: no LRN, nothing launched
            for dtype in lrn_triton.DTYPES:
                for fmt in (torch.contiguous_format, torch.channels_last):
                    net = model.to(dtype=dtype, memory_format=fmt)
                    for n in batches:
                        x = torch.empty(
                            n, net.in_channels, net.input_size, net.input_size, device="meta", dtype=dtype
                        ).contiguous(memory_format=fmt)
                        net(x).float().sum().backward()
                        net.zero_grad(set_to_none=True)
                        for norm in norms:  # the (N, C) form of the same layer (features, no map)
                            c = norm_channels(net, norm)
                            v = torch.empty(n, c, device="meta", dtype=dtype, requires_grad=True)
                            norm(v).sum().backward()
    finally:
        lrn_mod._triton_path, lrn_triton._launch = real_path, real_launch
    return seen


def norm_channels(net, norm) -> int:
    """The channel count an LRN layer sees: that of the convolution before it."""
    last = None
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            last = m.out_channels
        if m is norm:
            return last
    raise AssertionError("LRN layer not found")


def sgd_launches() -> list[tuple]:
    """(kernel, args, kwargs) of the paper's update for every parameter of every network."""
    seen = []
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name)
        for p in model.parameters():
            for fmt in (
                (torch.contiguous_format, torch.channels_last) if p.dim() == 4 else (torch.contiguous_format,)
            ):
                w = p.detach().contiguous(memory_format=fmt)
                planned = sgd_triton.launch_args(w, torch.empty_like(w), torch.empty_like(w), 0.01, 0.9, 5e-4)
                seen.append((sgd_triton._paper_sgd_kernel, planned[1], planned[2]))
    return seen


@functools.cache
def _binder(kernel, arch: int):
    backend = make_backend(GPUTarget("cuda", arch, 32))
    return backend, create_function_from_signature(kernel.signature, kernel.params, backend)


def specialise(kernel, args, kwargs, arch: int):
    """Triton's own binder on the launch's arguments, as kernel[grid](*args) would compile it for
    `arch`: (cache key, what triton.compile takes)."""
    backend, binder = _binder(kernel, arch)
    mock = [MockTensor(a.dtype) if isinstance(a, torch.Tensor) else a for a in args]  # data_ptr 0: aligned
    bound, spec, options = binder(*mock, **kwargs)
    key = json.dumps(
        [kernel.fn.__name__, arch, [list(map(str, s)) for s in spec], sorted(map(str, options.items()))]
    )
    return key, (kernel, backend, kwargs, bound, spec, options)


LAUNCHES: dict[str, tuple] = {}  # key -> (kernel, args, kwargs) of one launch with that key (set in main)


def compile_one(key: str) -> dict:
    """Compile one specialisation for its target; registers and spills from ptxas's report."""
    kernel, backend, kwargs, bound, spec, options = specialise(*LAUNCHES[key], json.loads(key)[1])[1]
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, spec, options)
    src = triton.compiler.ASTSource(kernel, signature, constexprs, attrs)
    knobs.nvidia.dump_ptxas_log = True  # ptxas -v runs inside triton.compile: keep its report
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(src, target=backend.target, options=options.__dict__)
    except Exception as e:  # noqa: BLE001 - a compile error is this check's finding
        return {"error": f"{type(e).__name__}: {str(e)[-1500:]}"}
    text = log.getvalue()
    regs, spills = re.search(r"Used (\d+) registers", text), re.search(r"(\d+) bytes spill stores", text)
    if regs is None or spills is None:
        return {"error": "no ptxas report in:\n" + text[-500:]}
    return {
        "registers": int(regs.group(1)),
        "spill bytes": int(spills.group(1)),
        "cubin bytes": len(compiled.asm["cubin"]),
    }


def cache_path(kernels) -> Path:
    """Results are valid for one Triton version and one source of each kernel (with the
    functions it calls): both are in the file's name."""
    source = " ".join([triton.__version__] + sorted(k.cache_key for k in kernels))
    return cache_dir() / f"triton-targets-{hashlib.sha256(source.encode()).hexdigest()[:16]}.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, nargs="+", default=[80, 90], help="CUDA compute capabilities")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="compiles at once")
    ap.add_argument("--no-cache", action="store_true", help="compile everything, keep nothing")
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET"):
        sys.exit("run without TRITON_INTERPRET: the kernels must be compiled, not interpreted")
    launches = lrn_launches() + sgd_launches()
    for kernel, a, kw in launches:
        for arch in args.targets:
            LAUNCHES.setdefault(specialise(kernel, a, kw, arch)[0], (kernel, a, kw))
    cache_file = cache_path({launch[0] for launch in launches})
    try:
        cached = {} if args.no_cache else json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cached = {}
    todo = [k for k in LAUNCHES if k not in cached]
    # Triton's own cache would skip ptxas, and with it the report: a fresh one, thrown away after
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRITON_CACHE_DIR"] = tmp
        if args.jobs > 1 and len(todo) > 1:
            with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                fresh = dict(zip(todo, pool.map(compile_one, todo)))
        else:
            fresh = {k: compile_one(k) for k in todo}
    good = {k: r for k, r in fresh.items() if "error" not in r}
    if good and not args.no_cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cached | good))
        tmp.replace(cache_file)
    print(
        json.dumps(
            {
                "launches": len(launches),
                "configurations": len(LAUNCHES),
                "compiled": len(todo),
                "results": {k: cached.get(k) or fresh[k] for k in LAUNCHES},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
