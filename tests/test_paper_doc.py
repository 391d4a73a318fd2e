"""docs/paper.md runs, and prints what it shows.

Its ```python blocks are executed in order in one namespace, as a reader pasting them into one
interpreter would, with the data from $ALEXNET_DATA_ROOT, writing into $ALEXNET_PAPER_OUT
(pictures in its img/) and nothing into the working folder. The ```text block right after a python block is the output the doc shows; it
is compared with what the block printed, line by line and token by token:

- words and symbols exactly;
- numbers within a tolerance: integers exactly, decimals within 1e-4 relative or one unit of their
  last printed digit; a block fenced ```text rtol=R allows R relative on every number (for numbers
  that come out of a short training run and move a little between CPUs);
- `...` in the shown output stands for anything on that line (throughput, timings).

A python block with no text block after it must print nothing. Every picture the doc shows from
img/ must be one that its blocks write.

    python tests/test_paper_doc.py            # run the doc here, print what each block printed
    python tests/test_paper_doc.py --update   # ... and write the outputs and pictures into docs/
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "paper.md"
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?|[-+]?\.\d+(?:[eE][-+]?\d+)?"
TOKEN = re.compile(rf"\.\.\.|{NUMBER}|\S")
IS_NUMBER = re.compile(rf"^(?:{NUMBER})$")


def blocks(text: str) -> list[dict]:
    """The python blocks, each with its line number and the text block that follows it."""
    fences = [(m, text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]
    out = []
    for i, (m, line) in enumerate(fences):
        if m.group(1) != "python":
            continue
        block = {"code": m.group(3), "line": line + 1, "expected": None, "info": "", "span": None}
        if i + 1 < len(fences):
            nxt = fences[i + 1][0]
            if nxt.group(1) == "text" and not text[m.end() : nxt.start()].strip():
                block.update(expected=nxt.group(3), info=nxt.group(2).strip(), span=nxt.span(3))
        out.append(block)
    return out


def _tolerance(expected: str, rtol: float | None) -> float:
    """One unit of the last printed digit, or the relative tolerance, whichever is larger."""
    mantissa, _, exp = expected.replace(",", "").lower().partition("e")
    decimals = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
    unit = 10.0 ** (int(exp or 0) - decimals)
    value = abs(float(expected.replace(",", "")))
    if rtol is None:  # the default: integers exactly, decimals to their printed precision
        return 0.0 if "." not in mantissa and not exp else max(unit, 1e-4 * value)
    return max(unit, rtol * value)


def _same(e: str, a: str, rtol: float | None) -> bool:
    if IS_NUMBER.match(e) and IS_NUMBER.match(a):
        return abs(float(e.replace(",", "")) - float(a.replace(",", ""))) <= _tolerance(e, rtol) * (1 + 1e-9)
    return e == a


def _match(exp: list[str], act: list[str], rtol: float | None) -> bool:
    if not exp:
        return not act
    if exp[0] == "...":  # anything (possibly nothing) up to a place where the rest matches
        return any(_match(exp[1:], act[k:], rtol) for k in range(len(act) + 1))
    return bool(act) and _same(exp[0], act[0], rtol) and _match(exp[1:], act[1:], rtol)


def compare(expected: str, actual: str, info: str = "") -> str | None:
    """None when `actual` is what `expected` shows, else the first line that differs."""
    m = re.search(r"rtol=([0-9.eE-]+)", info)
    rtol = float(m.group(1)) if m else None
    exp_lines, act_lines = expected.rstrip().splitlines(), actual.rstrip().splitlines()
    for n, (e, a) in enumerate(zip(exp_lines, act_lines), 1):
        if not _match(TOKEN.findall(e), TOKEN.findall(a), rtol):
            return f"line {n}:\n  shown:   {e.rstrip()}\n  printed: {a.rstrip()}"
    if len(exp_lines) != len(act_lines):
        return (
            f"{len(exp_lines)} lines shown, {len(act_lines)} printed; first extra: "
            f"{(exp_lines + act_lines)[min(len(exp_lines), len(act_lines))]!r}"
        )
    return None


def run_doc(text: str, progress: bool = False) -> list[tuple[dict, str]]:
    """Execute every python block in one namespace (in the current folder); (block, printed)."""
    namespace: dict = {"__name__": "__main__"}
    results = []
    for b in blocks(text):
        t0, c0 = time.time(), time.process_time()
        buf = io.StringIO()
        code = compile("\n" * (b["line"] - 1) + b["code"], str(DOC), "exec")  # tracebacks: doc lines
        with contextlib.redirect_stdout(buf):
            exec(code, namespace)
        results.append((b, buf.getvalue()))
        if progress:
            print(
                f"--- docs/paper.md:{b['line']} ({time.time() - t0:.1f} s, {time.process_time() - c0:.1f} s CPU)\n"
                f"{buf.getvalue()}",
                flush=True,
            )
    return results


def mismatches(results: list[tuple[dict, str]]) -> list[str]:
    out = []
    for b, printed in results:
        where = f"docs/paper.md:{b['line']}"
        if b["expected"] is None:
            if printed.strip():
                out.append(f"{where}: prints output but the doc shows none:\n{printed}")
        elif "unchecked" not in b["info"].split():
            diff = compare(b["expected"], printed, b["info"])
            if diff:
                out.append(f"{where}: {diff}")
    return out


def pictures(text: str) -> set[str]:
    return set(re.findall(r"!\[[^\]]*\]\((img/[^)\s]+)\)", text))


def test_paper_doc_runs_and_prints_what_it_shows(data_root, tmp_path, monkeypatch):
    for name in ("cifar10-jpeg.tar", "imagenet-sample"):
        if not (data_root / name).exists():
            pytest.skip(f"docs/paper.md needs {data_root / name}, which is absent")
    text = DOC.read_text()
    assert len(blocks(text)) >= 15, "docs/paper.md should walk the paper in runnable blocks"
    monkeypatch.setenv("ALEXNET_DATA_ROOT", str(data_root))
    out, cwd = tmp_path / "out", tmp_path / "cwd"
    monkeypatch.setenv("ALEXNET_PAPER_OUT", str(out))
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    results = run_doc(text)
    bad = mismatches(results)
    assert not bad, "docs/paper.md shows output its code no longer prints:\n\n" + "\n\n".join(bad)
    assert not list(cwd.iterdir()), "docs/paper.md wrote into the reader's working folder, not OUT"
    shown = pictures(text)
    written = {f"img/{p.name}" for p in (out / "img").glob("*")}
    assert shown, "docs/paper.md shows no pictures"
    assert shown <= written, f"pictures shown but not written by the doc's code: {sorted(shown - written)}"
    missing = sorted(p for p in shown if not (DOC.parent / p).is_file())
    assert not missing, f"pictures not committed under docs/: {missing}"


def test_output_comparison_tolerances():
    assert compare("error 45.65%, 60,965,224 params", "error 45.651%, 60,965,224 params") is None
    assert compare("error 45.65%", "error 45.67%") is not None  # beyond the last digit
    assert compare("60,965,224", "60,965,225") is not None  # integers exactly
    assert compare("loss 2.2944, 186 img/s", "loss 2.3100, 97 img/s", "rtol=0.05") is not None
    assert compare("loss 2.2944, ... img/s", "loss 2.3100, 97 img/s", "rtol=0.05") is None
    assert compare("torch.Size([2, 96, 55, 55])", "torch.Size([2, 96, 54, 55])") is not None
    assert compare("True", "False") is not None
    assert compare("a\nb", "a") is not None


def _main(update: bool) -> int:
    text = DOC.read_text()
    os.environ.setdefault(
        "ALEXNET_DATA_ROOT", os.environ.get("ALEXNET_TEST_DATA", str(DOC.parents[2] / "shared" / "data"))
    )
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ALEXNET_PAPER_OUT"] = tmp
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            t0 = time.time()
            results = run_doc(text, progress=True)
            print(f"=== {len(results)} blocks in {time.time() - t0:.1f} s")
        finally:
            os.chdir(cwd)
        bad = mismatches(results)
        print("\n\n".join(bad) if bad else "every block printed what the doc shows")
        if update:
            # new outputs only where the shown ones no longer match (`...` and rtol kept elsewhere)
            for b, printed in sorted(results, key=lambda r: -(r[0]["span"] or (0, 0))[0]):
                if b["span"] and compare(b["expected"], printed, b["info"]):
                    s, e = b["span"]
                    text = text[:s] + printed.rstrip() + "\n" + text[e:]
            DOC.write_text(text)
            (DOC.parent / "img").mkdir(exist_ok=True)
            shown = pictures(text)
            for p in sorted(shown):
                shutil.copyfile(Path(tmp) / p, DOC.parent / p)
                print(f"wrote docs/{p}")
            for old in sorted((DOC.parent / "img").iterdir()):  # docs/img/ holds this page's pictures only
                if f"img/{old.name}" not in shown:
                    old.unlink()
                    print(f"removed docs/img/{old.name}: no longer shown")
    return 0 if not bad or update else 1


if __name__ == "__main__":
    sys.exit(_main("--update" in sys.argv[1:]))
