"""Fetching a file by URL into a cache, verified, for datasets and pretrained weights alike.

What a download must survive: a connection that drops at 80 % (the partial file `<dest>.part` is
kept and the next try asks the server for the rest with an HTTP Range request), a server that
sends the wrong bytes (checksums are verified *before* the file is moved into place, and a file
that fails is deleted), two processes fetching at once (an advisory lock on `<dest>.lock`), and no
network at all (one line naming the URL and where to put the file by hand).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from .errors import BadInput, RunFailure

CHUNK = 1 << 20


class DownloadFailed(RunFailure, FileNotFoundError):
    """No URL answered: a failure at run time (exit 1), and the file is still missing."""


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


@contextlib.contextmanager
def _locked(dest: Path):
    """An advisory lock, so that two processes never append to the same partial file."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, the .part file is still safe alone
        yield
        return
    with open(dest.with_name(dest.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _transfer(url: str, part: Path, size: int | None, progress: bool, timeout: float) -> None:
    """Append url's bytes to `part`, resuming from its current length when the server allows."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have >= size:  # a complete (or overlong) partial: check it as it is
        return
    req = urllib.request.Request(url, headers={"User-Agent": "alexnet-downloader"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the partial is whole (or wrong)
            return
        raise
    with resp:
        if have and resp.status != 206:  # the server ignored the Range header: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        with open(part, "ab" if have else "wb") as f, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=part.name.removesuffix(".part"), disable=not progress, leave=False) as bar:
            got = 0
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if length is not None and got < int(length):  # http.client reports a dropped connection as EOF
        raise ConnectionError(f"connection closed after {have + got:,} of {total:,} bytes")


def fetch_file(urls: list[str], dest: Path, checksums: dict[str, str], size: int | None = None,
               download: bool = True, progress: bool = True, timeout: float = 30.0,
               validate: Callable[[Path], None] | None = None) -> Path:
    """`dest` if it is already there and intact; else download it from the first URL that
    answers, verify it (checksums, size, then `validate(path)`, which raises BadInput for a file
    that is not what it should be), and move it into place atomically.

    A file already at `dest` that fails its check is refused (BadInput) but left alone: it may be
    one the user put there by hand. A freshly downloaded file that fails is deleted (BadInput
    naming the checksum). No connection at all is a FileNotFoundError naming the URL and the place."""
    dest = Path(dest)
    hint = f"put {dest.name} (from {urls[0]}) at {dest}"
    if dest.is_file():
        problem = verify(dest, checksums, size)
        if problem is None:
            return dest
        raise BadInput(f"{dest}: {problem}; delete the file to download it again ({urls[0]})")
    if not download:
        raise FileNotFoundError(f"{dest} is missing: {hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _locked(dest):
        if dest.is_file():  # another process finished it while we waited for the lock
            return fetch_file(urls, dest, checksums, size, download=False)
        errors = []
        for url in urls:
            try:
                _transfer(url, part, size, progress, timeout)
                break
            except (OSError, http.client.HTTPException, ValueError) as e:  # ValueError: bad URL
                # the partial file stays: the next try (or URL) resumes it
                errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
        else:
            raise DownloadFailed(f"could not download {dest.name} ({'; '.join(errors)}); "
                                    f"with no network, {hint}")
        problem = verify(part, checksums, size)
        if problem is None and validate is not None:
            try:
                validate(part)
            except ValueError as e:
                problem = str(e)
        if problem is not None:
            part.unlink()
            raise BadInput(f"{url}: the downloaded {dest.name} fails its check ({problem}); "
                           "it was deleted, nothing was cached")
        os.replace(part, dest)  # atomic: nobody ever sees a half-written dest
    return dest
