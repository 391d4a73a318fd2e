"""Fetching a file by URL into a cache, verified, for datasets and pretrained weights alike.

What a download must survive: a connection that drops at 80 % (the partial file `<dest>.part` is
kept and the next try asks the server for the rest with an HTTP Range request), a server that
sends the wrong bytes (checksums are verified *before* the file is moved into place, and a file
that fails is deleted), two processes fetching at once (an advisory lock on `<dest>.lock`), and no
network at all (one line naming the URL and where to put the file by hand).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .errors import BadInput, RunFailure

CHUNK = 1 << 20
MAX_UNKNOWN = 1 << 30  # bytes: the cap for a file whose size nobody published


@dataclass(frozen=True)
class Limits:
    """How long a transfer may take: a mirror that trickles one byte every few seconds never
    trips a read timeout, so the rate and the whole transfer are bounded too. A transfer stopped
    for being slow keeps its partial file: the next try resumes it."""

    timeout: float = 30.0  # seconds one read may wait for any byte
    deadline: float = 4 * 3600.0  # seconds for the whole file (244 MB at 17 kB/s)
    min_rate: float = 16 * 1024  # bytes per second, averaged over each window
    window: float = 60.0  # seconds


LIMITS = Limits()


class DownloadFailed(RunFailure, FileNotFoundError):
    """No URL answered: a failure at run time (exit 1), and the file is still missing."""


class BadDownload(RunFailure, ValueError):
    """A transfer finished but delivered the wrong file (an HTML page, another file): a failed
    download (exit 1), and a ValueError to Python callers, as every refused file is."""


class _Stopped(ConnectionError):
    """This URL's transfer was stopped (too slow, too long, too large); the next URL is tried."""


def file_digests(path: Path, algorithms) -> dict[str, str]:
    """{algorithm: hex digest} of the file, read once whatever the number of algorithms."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def verify(path: Path, checksums: dict[str, str], size: int | None = None) -> str | None:
    """None if the file has the expected size and digests, else what is wrong (one phrase).
    A digest may be given as a prefix (torchvision's file names carry 8 hex digits of SHA-256)."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size {actual:,} bytes, expected {size:,}"
    got = file_digests(path, checksums)
    for algo, want in checksums.items():
        if not got[algo].startswith(want.lower()):
            return f"checksum mismatch: {algo} {got[algo]}, expected {want}"
    return None


def _own(path: Path) -> int:
    """The size of a cache file that must be ours: a symbolic link (which would let a write land
    outside the cache) or anything but a regular file is refused; 0 if there is none."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise BadInput(
            f"{path}: {kind} where the download keeps its own file; refusing to write "
            "through it (remove it and run again)"
        )
    return st.st_size


def _open_own(path: Path, append: bool):
    """Open a cache file for writing without following a symbolic link put in its place."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_APPEND if append else os.O_TRUNC)
    try:
        return os.fdopen(os.open(path, flags, 0o644), "ab" if append else "wb")
    except OSError as e:
        if e.errno == errno.ELOOP:
            _own(path)  # says what is there
        raise


@contextlib.contextmanager
def _locked(dest: Path):
    """An advisory lock, so that two processes never append to the same partial file."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, the .part file is still safe alone
        yield
        return
    lock = dest.with_name(dest.name + ".lock")
    _own(lock)
    with _open_own(lock, append=True) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _transfer(
    url: str, part: Path, size: int | None, cap: int, progress: bool, limits: Limits, start: float
) -> None:
    """Append url's bytes to `part`, resuming from its current length when the server allows,
    never past `cap` bytes, and stopping a transfer that is too slow or too long."""
    have = _own(part)
    if size is not None and have >= size:  # a complete (or overlong) partial: check it as it is
        return
    req = urllib.request.Request(url, headers={"User-Agent": "alexnet-downloader"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=limits.timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the partial is whole (or wrong)
            return
        raise
    with resp:
        if have and resp.status != 206:  # the server ignored the Range header: start over
            have = 0
        if resp.headers.get_content_type() == "text/html":  # a login or error page, sent with 200
            raise _Stopped("the server sent an HTML page, not the file")
        length = resp.headers.get("Content-Length")
        length = int(length) if length is not None and length.strip().isdigit() else None
        total = have + length if length is not None else size
        if total is not None and total > cap:
            raise _Stopped(f"the server declares {total:,} bytes, more than the {cap:,} expected")
        with (
            _open_own(part, append=bool(have)) as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=None if progress else True,
                leave=False,
            ) as bar,
        ):  # None: a terminal only
            got, window, in_window = 0, time.monotonic(), 0
            while chunk := resp.read1(CHUNK):  # what has arrived, not a full megabyte
                if have + got + len(chunk) > cap:
                    raise _Stopped(f"the server sends more than the {cap:,} bytes expected")
                f.write(chunk)
                got += len(chunk)
                in_window += len(chunk)
                bar.update(len(chunk))
                now = time.monotonic()
                if now - start > limits.deadline:
                    raise _Stopped(
                        f"not finished after {limits.deadline:g} s ({have + got:,} bytes kept; "
                        "run again to resume)"
                    )
                if now - window >= limits.window:
                    if in_window < limits.min_rate * (now - window):
                        raise _Stopped(
                            f"slower than {limits.min_rate:,.0f} bytes/s over {limits.window:g} s "
                            f"({have + got:,} bytes kept; run again to resume)"
                        )
                    window, in_window = now, 0
    if length is not None and got < length:  # http.client reports a dropped connection as EOF
        raise ConnectionError(f"connection closed after {have + got:,} of {total:,} bytes")


def fetch_file(
    urls: list[str],
    dest: Path,
    checksums: dict[str, str],
    size: int | None = None,
    download: bool = True,
    progress: bool = True,
    limits: Limits | None = None,
    validate: Callable[[Path], None] | None = None,
    max_size: int = MAX_UNKNOWN,
) -> Path:
    """`dest` if it is already there and intact; else download it from the first URL that
    answers, verify it (checksums, size, then `validate(path)`, which raises BadInput for a file
    that is not what it should be), and move it into place atomically. A transfer stops at
    `size` bytes (at `max_size` when the size is unknown) and within `limits`.

    A file already at `dest` that fails its check is refused (BadInput) but left alone: it may be
    one the user put there by hand, in a cache that may be read-only. A freshly downloaded file
    that fails is deleted (BadDownload, exit 1). No connection at all is a DownloadFailed naming
    the URL and the place."""
    dest, limits = Path(dest), limits or LIMITS
    hint = f"put {dest.name} (from {urls[0]}) at {dest}"
    if dest.exists() and not dest.is_file():  # before the transfer, not after 244 MB of it
        raise BadInput(
            f"{dest}: {'a folder' if dest.is_dir() else 'not a regular file'} is where the "
            f"download goes; remove it (or {hint})"
        )
    if dest.is_file():
        problem = verify(dest, checksums, size)
        if problem is None:
            return dest
        raise BadInput(f"{dest}: {problem}; delete the file to download it again ({urls[0]})")
    if not download:
        raise FileNotFoundError(f"{dest} is missing: {hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    cap = size if size is not None else max_size
    start = time.monotonic()
    with _locked(dest):
        if dest.is_file():  # another process finished it while we waited for the lock
            return fetch_file(urls, dest, checksums, size, download=False)
        errors = []
        for url in urls:
            try:
                _transfer(url, part, size, cap, progress, limits, start)
                break
            except (OSError, http.client.HTTPException, ValueError) as e:  # ValueError: bad URL
                if isinstance(e, BadInput):
                    raise
                # the partial file stays: the next try (or URL) resumes it
                errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
        else:
            raise DownloadFailed(
                f"could not download {dest.name} ({'; '.join(errors)}); with no network, {hint}"
            )
        problem = verify(part, checksums, size)
        if problem is None and validate is not None:
            try:
                validate(part)
            except ValueError as e:
                problem = str(e)
        if problem is not None:
            part.unlink()
            raise BadDownload(
                f"{url}: the downloaded {dest.name} fails its check ({problem}); "
                "it was deleted, nothing was cached"
            )
        os.replace(part, dest)  # atomic: nobody ever sees a half-written dest
    return dest
