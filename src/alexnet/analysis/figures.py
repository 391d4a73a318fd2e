"""Pictures drawn with Pillow alone (no plotting library needed)."""

from __future__ import annotations

import base64
import io
import zlib
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from ..errors import BadInput
from ..models.init import named_weight_layers

RED, BLUE = (200, 60, 60), (90, 120, 200)
LINE = 12  # pixels per line of the default font's text


def prediction_grid(
    images: list[torch.Tensor],
    top: list[list[tuple[str, float]]],
    out: str | Path,
    titles: list[str] | None = None,
    cell: int = 180,
    columns: int = 4,
    truth: list[str | None] | None = None,
) -> Path:
    """Paper Fig. 4 (left): each image with its correct label beneath it (`truth`, where known;
    else its title) and the network's top-5 labels as bars, the first its choice. As in the
    paper, the correct label's bar is red when it is among the five; the others are blue.
    `images` are (3, H, W) uint8 tensors."""
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
        true = truth[i] if truth else None
        title = true if true is not None else titles[i] if titles else ""
        draw.text((x0, y0 + cell + 2), title[:30], fill="black", font=font)
        for r, (label, p) in enumerate(preds):
            y = y0 + cell + 16 + r * rows_h
            draw.rectangle(
                [x0, y + 2, x0 + int(p * cell), y + rows_h - 2],
                fill=RED if true is not None and label == true else BLUE,
            )
            draw.text((x0 + 2, y), f"{label[:24]} {p:.0%}", fill="black", font=font)
    return _save(grid, out)


def check_out(out: str | Path, flag: str = "--out") -> Path:
    """An image file to write: its extension must name a format Pillow writes (said before the
    work that draws it, not after)."""
    out = Path(out)
    if not out.name or out.suffix.lower() not in Image.registered_extensions():
        raise BadInput(f"{flag} {str(out)!r}: expected an image file name ending in .png or .jpg")
    return out


def _save(img: Image.Image, out: str | Path) -> Path:
    out = check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out


def data_url(img: Image.Image, fmt: str = "PNG") -> str:
    """An image inlined in a page (a data: URL): nothing fetched from elsewhere. PNG with zlib's
    fastest level and run-length strategy: several times faster to write than the default
    (activation maps are mostly runs of black), hardly larger."""
    buf = io.BytesIO()
    fast = {"compress_level": 1, "compress_type": zlib.Z_RLE} if fmt == "PNG" else {"quality": 90}
    img.save(buf, fmt, **fast)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def _tile(img: torch.Tensor, size: int) -> Image.Image:
    return Image.fromarray(img.permute(1, 2, 0).squeeze(-1).numpy()).convert("RGB").resize((size, size))


def neighbours_grid(
    queries: list[torch.Tensor],
    found: list[list[torch.Tensor]],
    captions: list[list[str]],
    out: str | Path,
    cell: int = 96,
) -> Path:
    """Paper Fig. 4 (right): each query in the first column, its neighbours beside it, nearest
    first, each captioned with lines (label, then distance) so the two never run together."""
    font = ImageFont.load_default()
    k = max((len(f) for f in found), default=0)
    lines = max((len(c.splitlines()) for caps in captions for c in caps), default=1)
    row_h = cell + 6 + LINE * lines
    w, h = (k + 1) * (cell + 6) + 14, len(queries) * row_h + 6
    grid = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(grid)
    for r, (q, row, caps) in enumerate(zip(queries, found, captions)):
        y = 6 + r * row_h
        grid.paste(_tile(q, cell), (6, y))
        draw.rectangle([4, y - 2, 8 + cell, y + cell + 1], outline=(200, 40, 40), width=2)
        for c, (img, cap) in enumerate(zip(row, caps)):
            x = 14 + (c + 1) * (cell + 6)
            grid.paste(_tile(img, cell), (x, y))
            for j, text in enumerate(cap.splitlines()):
                draw.text((x, y + cell + 2 + LINE * j), _fit(draw, text, cell, font), fill="black", font=font)
    return _save(grid, out)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """`text` cut (with "..") to what fits in `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."


def first_layer(model: torch.nn.Module) -> tuple[torch.Tensor, int]:
    """(the first conv layer's kernels, the number of towers): conv2's groups say how the first
    layer's kernels divide between the paper's two GPUs (§3.2)."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return convs[0].weight, convs[1].groups if len(convs) > 1 else 1


def filter_grid(weight: torch.Tensor, out: str | Path, groups: int = 1, scale: int | None = None) -> Path:
    """Paper Fig. 3 drawn into the file `out` (see filter_image)."""
    return _save(filter_image(weight, groups, scale), out)


def filter_image(weight: torch.Tensor, groups: int = 1, scale: int | None = None) -> Image.Image:
    """Paper Fig. 3: first-layer kernels (out, 3, k, k), each scaled to its own range; with two
    towers, each tower's kernels form their own block, side by side."""
    w = weight.detach().float().cpu()
    n, c, k, _ = w.shape
    scale = scale or max(4, 40 // k)  # 11x11 kernels x4 as in Fig. 3; small ones larger
    per = n // groups
    cols = 8
    rows = -(-per // cols)
    pad = 2
    block_w = cols * (k * scale + pad) + pad
    grid = Image.new("RGB", (groups * block_w + (groups - 1) * 8, rows * (k * scale + pad) + pad), "white")
    # every kernel to 0..255 at once: one tensor op, not one per kernel (each costs a thread-pool
    # round trip, which on a busy machine is most of the time)
    lo, hi = w.amin((1, 2, 3), keepdim=True), w.amax((1, 2, 3), keepdim=True)
    u8 = ((w - lo) / (hi - lo + 1e-12) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        g, j = divmod(i, per)
        arr = u8[i].repeat(scale, 0).repeat(scale, 1)
        if c != 3:
            arr = arr[:, :, :1].repeat(3, 2)
        tile = Image.fromarray(arr)
        grid.paste(
            tile,
            (g * (block_w + 8) + pad + (j % cols) * (k * scale + pad), pad + (j // cols) * (k * scale + pad)),
        )
    return grid


def conv1_filters(model: torch.nn.Module, out: str | Path) -> Path:
    """Fig. 3 of a network: its first layer's kernels, in as many blocks as it has towers (the
    groups of the second convolution, which each take one block's outputs)."""
    weight, towers = first_layer(model)
    return filter_grid(weight, out, towers)


COLORS = [(60, 90, 200), (200, 60, 60), (40, 150, 70), (150, 90, 20)]


def line_chart(
    series: dict[str, tuple[list[float], list[float]]],
    out: str | Path,
    xlabel: str = "epoch",
    vlines: list[float] = (),
    hline: float | None = None,
    size=(640, 360),
) -> Path:
    """Error rates (0..1) against x, one coloured line per series, optional dashed vertical
    marks (learning-rate changes) and a horizontal target line. The legend sits above the
    plot, never on a line."""
    font = ImageFont.load_default()
    W, H = size
    left, right, bottom = 50, 20, 40
    top = 12 + LINE * len(series)  # the legend's rows
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    xs_all = [x for xs, _ in series.values() for x in xs] or [0, 1]
    x0, x1 = min(xs_all), max(xs_all)
    span = max(x1 - x0, 1)
    px = lambda e: left + (e - x0) / span * (W - left - right)  # noqa: E731
    py = lambda v: top + (1 - v) * (H - top - bottom)  # noqa: E731
    d.rectangle([left, top, W - right, H - bottom], outline="black")
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        d.line([left - 4, py(v), left, py(v)], fill="black")
        d.text((4, py(v) - 6), f"{v:.0%}", fill="black", font=font)
    ticks = sorted(set(xs_all))
    for e in ticks[:: max(1, len(ticks) // 15)]:
        d.text((px(e) - 4, H - bottom + 4), f"{e:g}", fill="black", font=font)
    for x in vlines:
        for y in range(top, H - bottom, 8):
            d.line([px(x), y, px(x), y + 4], fill=(120, 120, 120))
    if hline is not None:
        for x in range(left, W - right, 8):
            d.line([x, py(hline), x + 4, py(hline)], fill=(120, 120, 120))
    for n, (name, (xs, ys)) in enumerate(series.items()):
        color = COLORS[n % len(COLORS)]
        pts = [(px(x), py(y)) for x, y in zip(xs, ys)]
        if len(pts) > 1:
            d.line(pts, fill=color, width=2)
        for p in pts:
            d.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=color)
        y = 6 + LINE * n + LINE // 2
        d.line([left, y, left + 24, y], fill=color, width=2)
        d.text((left + 30, y - LINE // 2), name, fill=color, font=font)
    d.text((W // 2 - 15, H - 14), xlabel, fill="black", font=font)
    return _save(img, out)


def curves(rows: list[dict], out: str | Path, size=(640, 360)) -> Path:
    """Training and validation top-1 error against epoch (from metrics.csv: 2.5 is a validation
    half-way through the third epoch), learning-rate changes marked by dashed vertical lines."""
    epochs = [float(r["epoch"]) for r in rows]
    lrs = [float(r["lr"]) for r in rows]
    marks = [(epochs[i - 1] + epochs[i]) / 2 for i in range(1, len(rows)) if lrs[i] != lrs[i - 1]]
    series = {
        "train top-1 error": (epochs, [float(r["train_top1_err"]) for r in rows]),
        "val top-1 error": (epochs, [float(r["val_top1_err"]) for r in rows]),
    }
    return line_chart(series, out, vlines=marks, size=size)


def error_curves(curves_by_name: dict[str, list[float]], target: float, out: str | Path) -> Path:
    """Paper Fig. 1: training error against epochs for each network, the target dashed."""
    series = {name: (list(range(1, len(v) + 1)), v) for name, v in curves_by_name.items()}
    return line_chart(series, out, hline=target)


def tower_diagram(model: torch.nn.Module, out: str | Path, size=(760, 250)) -> Path:
    """Paper Fig. 2 as two rows of boxes, one per tower (GPU), one column per learned layer, the
    maps (neurons) each tower holds written in its box. A grey arrow feeds a layer from its own
    tower; red arrows cross between the towers where a layer reads the maps of both: the layers
    without groups (§3.2: conv3, fc6, fc7). conv1 reads the image, which both towers hold; the
    output layer (fc8, 1,000-way softmax) reads both towers too."""
    layers = list(named_weight_layers(model).items())
    font = ImageFont.load_default()
    W, H = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    step = (W - 60) // len(layers)
    bw, bh, rows, mid = step - 34, 44, (30, 150), 90
    d.rectangle([6, mid, 46, mid + bh], outline="black")
    d.text((10, mid + 16), "image", fill="black", font=font)
    red, grey = (200, 40, 40), (130, 130, 130)
    for i, (name, m) in enumerate(layers):
        x = 60 + i * step
        width = getattr(m, "out_channels", getattr(m, "out_features", 0))
        last, crosses = i == len(layers) - 1, i > 0 and getattr(m, "groups", 1) == 1
        sx = x - step + bw if i else 46  # the previous box's right edge, or the image's
        for r, y in enumerate(rows if not last else (mid,)):
            d.rectangle([x, y, x + bw, y + bh], outline="black", fill=(235, 240, 250))
            d.text((x + 4, y + 6), name, fill="black", font=font)
            d.text((x + 4, y + 22), str(width if last else width // 2), fill=(90, 90, 90), font=font)
            if last:  # one output layer, fed by both towers
                for src in rows:
                    d.line([sx, src + bh // 2, x, y + bh // 2], fill=red, width=2)
                continue
            d.line([sx, (y if i else mid) + bh // 2, x, y + bh // 2], fill=grey, width=2)
            if crosses:  # this tower's layer also reads the other tower's maps
                d.line([sx, rows[1 - r] + bh // 2, x, y + bh // 2], fill=red, width=2)
    d.text((60, 8), "tower (GPU) 1", fill="black", font=font)
    d.text((60, rows[1] + bh + 6), "tower (GPU) 2", fill="black", font=font)
    d.text((W - 330, H - 16), "red: where the towers exchange activations", fill=red, font=font)
    return _save(img, out)


def pca_directions(
    image: torch.Tensor,
    eigval: torch.Tensor,
    eigvec: torch.Tensor,
    out: str | Path,
    std: float = 0.1,
    steps=(-30, -3, 0, 3, 30),
    seam: float = 3,
    cell: int = 128,
) -> Path:
    """§4.1's colour noise one eigenvector at a time: row i adds alpha_i lambda_i p_i (255 x, for
    [0, 1]-unit eigen-pairs) to every pixel of `image` (3, H, W uint8), alpha_i = k x std for k in
    `steps`. A draw of alpha_i lies within +-3 std almost always; +-30 std exaggerates tenfold, so
    that each direction's colour shows. The last column joins -seam and +seam std at a seam down
    the middle, where a real draw's largest shift is easiest to see."""
    font = ImageFont.load_default()
    cols = len(steps) + 1
    grid = Image.new("RGB", (40 + cols * (cell + 6), 16 + 3 * (cell + 6)), "white")
    d = ImageDraw.Draw(grid)
    heads = [f"{k:+g} sigma" if k else "original" for k in steps] + [f"{-seam:+g} | {seam:+g} sigma"]
    for c, head in enumerate(heads):
        d.text((40 + c * (cell + 6) + cell // 2 - 24, 2), head, fill="black", font=font)
    for r in range(3):
        d.text((8, 16 + r * (cell + 6) + cell // 2 - 6), f"p{r + 1}", fill="black", font=font)

        def shifted(k: float, r: int = r) -> torch.Tensor:
            shift = (k * std * eigval[r] * eigvec[:, r] * 255).to(torch.float32)
            return (image.float() + shift[:, None, None]).clamp(0, 255).round().byte()

        joined = shifted(-seam)
        joined[..., joined.shape[-1] // 2 :] = shifted(seam)[..., joined.shape[-1] // 2 :]
        for c, t in enumerate([shifted(k) for k in steps] + [joined]):
            grid.paste(_tile(t, cell), (40 + c * (cell + 6), 16 + r * (cell + 6)))
    return _save(grid, out)
