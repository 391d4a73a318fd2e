"""Data parallel under torchrun: one process per device, and every decision agreed by all ranks.

A rank that decides alone (to stop, to save, to give up) waits forever in the next collective
while the others wait in theirs, so stop requests and non-finite losses are combined into one
small all-reduce at fixed step numbers, and every rank saves, stops or fails at the same step.
"""

from __future__ import annotations

import gc
import os
import secrets
import socket
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from ..devices import check_device
from ..errors import BadInput, RunFailure

# Collectives wait this long for a slow rank. Long pauses on one rank (a statistics pass, a
# checkpoint written to a slow shared disk) fit; the statistics pass itself is shared.
TIMEOUT = timedelta(minutes=30)


def env() -> tuple[int, int, int, int]:
    """(rank, world size, local rank, processes on this node) as torchrun sets them."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return (int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")), local_world)


def device(name: str, flag: str, local_rank: int | None = None) -> torch.device:
    """The device a flag names, checked; plain "cuda" under torchrun means this rank's GPU."""
    dev = check_device(name, flag)
    if dev.type == "cuda" and dev.index is None and local_rank is not None and env()[1] > 1:
        dev = torch.device("cuda", local_rank)
    return dev


def init(device_type: str) -> bool:
    """Join the process group if this is a torchrun worker; True if this call created it."""
    _, world, _, _ = env()
    if world <= 1 or dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=TIMEOUT)
    return True


def finish(agreed: bool = True) -> None:
    """Leave the process group: without it a rank can abort at exit ("terminate called without
    an active exception") after all its files are written, and torchrun reports the job failed.
    When every rank ends here together (`agreed`: the run finished, or a stop or failure all
    ranks agreed on), they meet first, so none tears its connections down while another still
    uses them; a rank failing alone does not wait for the others. What still refers to the group
    (DDP's reducer) must be gone (collected) before."""
    if dist.is_initialized():
        gc.collect()
        try:
            if agreed and dist.get_world_size() > 1:
                dist.barrier()
        except RuntimeError:  # a peer already gone (it failed): nothing left to agree on
            pass
        dist.destroy_process_group()


def all_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


def all_max(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def gather(obj) -> list:
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def check_shared(run: Path, rank: int, device: torch.device) -> None:
    """Every rank must see the run folder rank 0 writes (checkpoints are resumed from it): rank 0
    leaves a token there, the others look for it. On several nodes this needs a shared file system."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return
    name = [f".rank0-{secrets.token_hex(8)}" if rank == 0 else None]
    dist.broadcast_object_list(name, src=0)
    token = run / name[0]
    if rank == 0:
        token.write_text(socket.gethostname())
    dist.barrier()
    blind = all_sum(torch.tensor([0.0 if token.exists() else 1.0], device=device))
    dist.barrier()
    if rank == 0:
        token.unlink(missing_ok=True)
    if blind.item():
        raise RunFailure(
            f"--run-dir {run}: {int(blind.item())} process(es) cannot see the files rank 0 "
            f"writes there (this is rank {rank} on {socket.gethostname()}); runs on several "
            "nodes need a run folder on a file system shared by all of them (docs/training.md)"
        )


def resume_command(run: Path) -> str:
    """The command that continues this run with the same number of processes."""
    _, world, _, local_world = env()
    if world <= 1:
        return f"alexnet train --resume {run}"
    nodes = max(1, world // max(local_world, 1))
    launch = (
        f"torchrun --nproc-per-node {local_world}"
        if nodes == 1
        else f"torchrun --nnodes {nodes} --nproc-per-node {local_world} --rdzv-backend c10d "
        "--rdzv-endpoint HOST:PORT"
    )
    return f"{launch} -m alexnet train --resume {run}"


def check_world(path: Path, saved: int | None, world: int) -> None:
    """Bit-identical continuation needs the same split of every batch over the same ranks."""
    if saved is not None and saved != world:
        raise BadInput(
            f"{path} was written by {saved} process(es), and this is {world}: resume it with "
            f"{saved} (torchrun --nproc-per-node ...), since another number splits every "
            "batch differently and the run would not continue as it started"
        )
