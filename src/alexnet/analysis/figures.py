"""Pictures drawn with Pillow alone (no plotting library needed)."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont


def prediction_grid(images: list[torch.Tensor], top: list[list[tuple[str, float]]], out: str | Path,
                    titles: list[str] | None = None, cell: int = 180, columns: int = 4) -> Path:
    """Paper Fig. 4 (left): each image with its top-5 labels as bars beneath, the first bar the
    network's choice. `images` are (3, H, W) uint8 tensors."""
    font = ImageFont.load_default()
    rows_h = 14
    bars_h = rows_h * max((len(t) for t in top), default=0) + 18
    n = len(images)
    cols = max(1, min(columns, n))
    grid = Image.new("RGB", (cols * (cell + 10) + 10, -(-n // cols) * (cell + bars_h + 10) + 10), "white")
    draw = ImageDraw.Draw(grid)
    for i, (img, preds) in enumerate(zip(images, top)):
        x0 = 10 + (i % cols) * (cell + 10)
        y0 = 10 + (i // cols) * (cell + bars_h + 10)
        pic = Image.fromarray(img.permute(1, 2, 0).squeeze(-1).numpy()).convert("RGB").resize((cell, cell))
        grid.paste(pic, (x0, y0))
        title = titles[i] if titles else ""
        draw.text((x0, y0 + cell + 2), title[:30], fill="black", font=font)
        for r, (label, p) in enumerate(preds):
            y = y0 + cell + 16 + r * rows_h
            draw.rectangle([x0, y + 2, x0 + int(p * cell), y + rows_h - 2],
                           fill=(200, 60, 60) if r == 0 else (90, 120, 200))
            draw.text((x0 + 2, y), f"{label[:24]} {p:.0%}", fill="black", font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    return out
