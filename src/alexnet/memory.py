"""Peak memory of a process tree (a command plus its loader workers), sampled from /proc.

`run_measured(cmd)` starts a command in its own session, samples the summed RSS (and PSS, which
counts pages that forked workers share with the main process once) of every process in its tree
from a background thread, and kills the whole tree when a limit is crossed, so a run that leaks can
be measured without taking the machine down. Linux only: elsewhere the numbers are 0.
Used by benchmarks/memory.py and tests/test_memory.py.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

GB = 1 << 30


def tree_pids(pid: int) -> list[int]:
    """pid and every live descendant (read from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:  # the thread or process ended while we looked
                pass
    return out


def _kb(path: str, key: str) -> int:
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def rss(pid: int) -> int:
    """Resident set size of one process, in bytes (0 once it has ended)."""
    return _kb(f"/proc/{pid}/status", b"VmRSS:")


def hwm(pid: int) -> int:
    """The kernel's own record of the process's peak RSS ("high water mark"), in bytes."""
    return _kb(f"/proc/{pid}/status", b"VmHWM:")


def pss(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes that map them."""
    return _kb(f"/proc/{pid}/smaps_rollup", b"Pss:")


@dataclass
class Peak:
    rss: int = 0  # max over samples of the summed RSS of the tree
    pss: int = 0  # max over samples of the summed PSS of the tree
    main_rss: int = 0  # peak RSS of the root process alone (the kernel's VmHWM: exact)
    processes: int = 0  # most processes seen at once
    samples: int = 0
    killed: bool = False  # the limit was crossed and the tree was killed
    timeline: list = field(default_factory=list)  # (seconds, tree RSS, tree PSS) per sample

    def row(self) -> str:
        return f"{self.rss / GB:.2f} GB RSS, {self.pss / GB:.2f} GB PSS, main {self.main_rss / GB:.2f} GB"


class Sampler(threading.Thread):
    """Samples the tree of `pid` every `interval` s until stopped or the root has exited; with a
    `limit` (bytes) it kills the root's process group as soon as the tree's PSS (its RSS without
    `with_pss`) crosses it. PSS, not RSS: a worker forked from a large process maps all of that
    process's pages, and RSS counts them once per worker although they exist once."""

    def __init__(self, pid: int, interval: float = 0.1, limit: int | None = None, with_pss: bool = True):
        super().__init__(daemon=True)
        self.pid, self.interval, self.limit, self.with_pss = pid, interval, limit, with_pss
        self.peak = Peak()
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def sample(self) -> int:
        pids = tree_pids(self.pid)
        sizes = [rss(p) for p in pids]
        total, pk, shared = sum(sizes), self.peak, 0
        pk.rss, pk.main_rss = max(pk.rss, total), max(pk.main_rss, sizes[0], hwm(self.pid))
        pk.processes = max(pk.processes, sum(s > 0 for s in sizes))
        if self.with_pss:
            shared = sum(pss(p) for p in pids)
            pk.pss = max(pk.pss, shared)
        pk.samples += 1
        pk.timeline.append((round(time.monotonic() - self._t0, 2), total, shared))
        return shared if self.with_pss else total

    def run(self) -> None:
        while not self._halt.is_set() and os.path.exists(f"/proc/{self.pid}"):
            if self.sample() > (self.limit or float("inf")) and not self.peak.killed:
                self.peak.killed = True
                try:  # the whole group only where the root leads its own (run_measured's case)
                    if os.getpgid(self.pid) == self.pid:
                        os.killpg(self.pid, signal.SIGKILL)
                    else:
                        os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._halt.wait(self.interval)

    def stop(self) -> Peak:
        self._halt.set()
        self.join()
        return self.peak


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak: Peak
    output: str
    cpu_seconds: float = 0.0  # user + system time of the tree (of the processes it waited for)
    minor_faults: int = 0  # page faults served without I/O: fresh pages mapped in


def run_measured(
    cmd: list[str],
    *,
    limit: int | None = None,
    timeout: float | None = None,
    interval: float = 0.1,
    env: dict | None = None,
    cwd: str | None = None,
) -> Measured:
    """Run `cmd` to completion (or until it crosses `limit` bytes of tree PSS, or `timeout` s)
    and return its exit status, wall time, peak memory and combined output. CPU time and page
    faults are this process's children's totals before and after: run one command at a time."""
    before, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
    )  # its own process group: the kill reaches workers
    sampler = Sampler(proc.pid, interval, limit)
    sampler.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += b"\n[killed: timeout]"
    peak, after = sampler.stop(), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Measured(
        proc.returncode,
        time.monotonic() - t,
        peak,
        out.decode(errors="replace"),
        cpu,
        after.ru_minflt - before.ru_minflt,
    )
