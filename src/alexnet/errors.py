"""The package's error vocabulary, and how the command line turns any error into one line.

Bad input (a wrong flag value, a file that is not what it claims to be) is the user's to fix:
exit status 2. A failure at run time (a full disk, a diverged run, a peer process that died) is
not: exit status 1. Both print exactly one line naming the thing and what was expected;
`--debug` or ALEXNET_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import errno
import os


class BadInput(ValueError):
    """Input that cannot be used as given: a flag, a config value, a file's content. Exit 2."""


class RunFailure(RuntimeError):
    """Work that could not be finished for a reason outside the input. Exit 1."""


# OSErrors that mean "this path is not what you said": the user's to fix.
_INPUT_ERRNOS = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.ELOOP,
    errno.ENAMETOOLONG,
    errno.EINVAL,
}


def debug_enabled() -> bool:
    return os.environ.get("ALEXNET_DEBUG", "") not in ("", "0")


def worker_failure(msg: str) -> str:
    """A loader worker's exception, which torch re-raises in the main process as "Caught X in
    DataLoader worker process N.\nOriginal Traceback ...\nmodule.X: why", as one line: the
    worker and the last line of its traceback, without the frames."""
    head, sep, tb = msg.partition("\nOriginal Traceback")
    if not sep or not head.startswith("Caught "):
        return msg
    worker = head.rstrip(".").partition(" in DataLoader ")[2] or "worker"
    last = next((line.strip() for line in reversed(tb.splitlines()) if line.strip()), "")
    kind, colon, why = last.partition(": ")
    name = kind.rpartition(".")[2]
    if colon and name.isidentifier():  # our own errors say it all; others keep their type's name
        last = why if name in ("BadInput", "RunFailure") else f"{name}: {why}"
    return f"data-loading {worker}: {last}"


def classify(e: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) for an exception that reached the command line."""
    msg = worker_failure(str(e))
    if isinstance(e, RunFailure):  # before OSError: a failed download is both (exit 1)
        return 1, msg
    if isinstance(e, OSError):
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        what = e.strerror or msg
        if e.errno == errno.ENOSPC:
            return 1, f"{where}no space left on device; free some space and run again"
        status = 2 if (e.errno in _INPUT_ERRNOS or isinstance(e, FileNotFoundError)) else 1
        return status, f"{where}{what}" if where or what else type(e).__name__
    if isinstance(e, (ValueError, KeyError, TypeError, LookupError)) and msg:
        if isinstance(e, KeyError) and msg.startswith("'"):
            msg = f"missing key {msg}"
        return (2 if isinstance(e, ValueError) else 1), msg
    if isinstance(e, MemoryError):
        return 1, "out of memory (MemoryError); try a smaller --batch-size or fewer --workers"
    return 1, f"{type(e).__name__}: {msg} (run with --debug for the traceback)"


WORD_MAX = 1000  # characters of one word (a path, a quoted value) that a message shows in full


def shortened(word: str) -> str:
    """A word of a message with its middle cut when it is longer than WORD_MAX: a 100,000-character
    value quoted in full would push the reason out of the line."""
    return word if len(word) <= WORD_MAX else f"{word[:700]}...({len(word):,} characters)...{word[-100:]}"


def one_line(msg: str, limit: int = 2000) -> str:
    """Messages are single lines: newlines folded, overlong words and texts cut, and what is left
    unprintable (an ESC from a file name quoted in the message) made visible."""
    msg = shown(" ".join(shortened(w) for w in str(msg).split()))
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def shown(text) -> str:
    """A string that came from a file (a class name, a file name, a card field) as it may reach
    a terminal: a newline that would print a forged line, an ESC that would start an escape
    sequence (clear the screen, retitle the window), an invisible right-to-left override, or a
    byte of a file name that is not UTF-8, each becomes a visible escape (\\n, \\x1b, \\u202e,
    \\xff); everything printable, accented letters and CJK included, is left as it is."""
    text = str(text)
    return text if text.isprintable() else "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte of a file name
        return f"\\x{o - 0xDC00:02x}"
    if c in "\n\r\t":
        return repr(c)[1:-1]
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"
