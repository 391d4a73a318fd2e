"""Peak memory of decoding one large image, by pixel type: 8-bit grey and RGB, 16-bit grey
(PNG I;16), 32-bit integer and float (TIFF I, F). Issue 18: a 16-bit PNG at the pixel limit cost
2.5x an 8-bit one when to_8bit worked in float64; it now works in the image's own integer width,
a strip at a time.

    python benchmarks/decode_memory.py [--side 6000] [--repeat 1]

Each image is written first, then decoded (`alexnet.data.decode.decode`, resize 256, centre
crop 256, RGB, as the loader does) in a fresh process; the column is that process's peak RSS
(VmHWM) above its RSS once the file's bytes are in memory, and its ratio to the 8-bit grey
image of the same size (the same pixels, one byte each)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = """
import sys
from alexnet.data.decode import decode

def kb(field):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])

data = open(sys.argv[1], "rb").read()
base = kb("VmRSS")
x = decode(data, sys.argv[1], resize=256, crop=256, max_pixels=10**9)
assert x.shape == (3, 256, 256)
print(kb("VmHWM") - base)
"""

KINDS = {  # name -> (numpy array maker, format)
    "8-bit grey PNG": (lambda r, s: r.integers(0, 256, (s, s), dtype=np.uint8), "PNG"),
    "8-bit RGB PNG": (lambda r, s: r.integers(0, 256, (s, s, 3), dtype=np.uint8), "PNG"),
    "16-bit grey PNG": (lambda r, s: r.integers(0, 65536, (s, s), dtype=np.uint16), "PNG"),
    "32-bit int TIFF": (lambda r, s: r.integers(0, 2**31 - 1, (s, s), dtype=np.int32), "TIFF"),
    "32-bit float TIFF": (lambda r, s: r.random((s, s), dtype=np.float32), "TIFF"),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=6000, help="images are side x side pixels")
    ap.add_argument("--repeat", type=int, default=1, help="decodes per kind (the smallest peak is kept)")
    opts = ap.parse_args()
    rng = np.random.default_rng(0)
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, fmt) in KINDS.items():
            path = Path(tmp) / f"x.{fmt.lower()}"
            Image.fromarray(make(rng, opts.side)).save(
                path, fmt, **({"compress_level": 1} if fmt == "PNG" else {})
            )
            runs = [
                int(
                    subprocess.run(
                        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
                    ).stdout
                )
                for _ in range(opts.repeat)
            ]
            peaks[name] = min(runs) / 1024
            path.unlink()
    px = opts.side**2 / 1e6
    grey = peaks["8-bit grey PNG"]
    print(
        f"# {opts.side}x{opts.side} = {px:.1f} Mpixels, decode + resize 256 + crop 256 to RGB; peak RSS above the file's bytes"
    )
    for name, mb in peaks.items():
        print(f"{name:<18} {mb:8.0f} MB  {mb / px:5.2f} B/pixel  {mb / grey:5.2f}x 8-bit grey")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
