"""The network opened up, without a web server: its trunk as a list of stages (conv with its ReLU,
LRN, pooling, BatchNorm), every stage's maps for one image, pictures of them, where in the image
a unit looks, what LRN does to one channel (§3.3), and the occlusion map of Zeiler & Fergus
(2014, §4.2). app.py serves these; tests call them directly."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..nn.local import LocallyConnected2d
from ..nn.lrn import LocalResponseNorm, effective_alpha

# cuda-convnet's CIFAR nets (§3.3's 13 % / 11 %) have locally connected layers: a stage of their own
KINDS = (
    (nn.Conv2d, "conv"),
    (LocallyConnected2d, "local"),
    (LocalResponseNorm, "norm"),
    ((nn.MaxPool2d, nn.AvgPool2d), "pool"),
    ((nn.BatchNorm1d, nn.BatchNorm2d), "bn"),
)
BORDER, GAP = 48, 255  # grey lines between the maps, white between the towers


@dataclass
class Stage:
    """One picture's worth of the trunk. Unit (y, x) of its maps sees the input pixels from
    (start + y * jump, start + x * jump), `size` wide: its receptive field."""

    name: str
    kind: str
    modules: list = field(repr=False)
    start: int = 0
    jump: int = 1
    size: int = 1

    def box(self, y: int, x: int, side: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of unit (y, x)'s field, clipped to a side x side input."""
        top, left = self.start + y * self.jump, self.start + x * self.jump
        return (max(0, left), max(0, top), min(side, left + self.size), min(side, top + self.size))


def _int(v) -> int:
    return v if isinstance(v, int) else v[0]


def stages(model: nn.Module) -> list[Stage]:
    """The trunk's modules grouped as a learner reads Fig. 2: conv1 (with its ReLU), norm1,
    pool1, conv2 ... Activations and dropout (the identity at test time) end the stage before
    them. Names count the convolutions (and locally connected layers): "norm1" follows conv1,
    "pool5" conv5, "local3" conv2."""
    out, convs = [], 0
    start, jump, size = 0, 1, 1
    for m in model.features.children():
        kind = next((k for types, k in KINDS if isinstance(m, types)), None)
        if kind is None and out:
            out[-1].modules.append(m)
            continue
        if kind in ("conv", "local", "pool"):  # the field grows by (k - 1) input steps, the step by stride
            k, s = _int(m.kernel_size), _int(m.stride)
            p = _int(m.padding) if not isinstance(m.padding, str) else (k - 1) // 2 * (m.padding == "same")
            start, size, jump = start - p * jump, size + (k - 1) * jump, jump * s
        convs += kind in ("conv", "local")
        name = f"{kind or type(m).__name__.lower()}{convs}"
        out.append(Stage(name, kind or "other", [m], start, jump, size))
    return out


@torch.no_grad()
def walk(model: nn.Module, plan: list[Stage], x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every stage's output for the batch x, and the logits: the modules of model(x) in its
    order, so the logits are exactly the network's (`alexnet predict` gives the same numbers)."""
    outs = []
    for st in plan:
        for m in st.modules:
            x = m(x)
        outs.append(x)  # later stages start with a new tensor: an in-place ReLU never reaches it
    return outs, model.forward_head(x)


def scaled(a: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Values as 0..255 grey: lo (default min(a, 0)) black, hi (default max(a)) white."""
    lo = min(float(a.min()), 0.0) if lo is None else lo
    hi = float(a.max()) if hi is None else hi
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.rint((a.clip(lo, hi) - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def grid(maps: torch.Tensor, towers: int = 1, pad: int = 1, gap: int = 6) -> tuple[Image.Image, dict]:
    """A stage's maps (C, H, W) as one picture: each tower's channels tiled in a block of its own,
    the blocks side by side (§3.2: half of every layer's kernels on each GPU), one brightness
    scale for the whole stage (white: its largest value) so that its channels compare. The
    layout says where channel c is: tower c // per, tile c % per of that block, row-major."""
    c, h, w = maps.shape
    t = towers if c % towers == 0 else 1
    per = c // t
    cols = math.ceil(math.sqrt(per))
    rows = math.ceil(per / cols)
    a = maps.float().numpy()
    lo, hi = min(float(a.min()), 0.0), float(a.max())
    tiles = np.full((t, rows * cols, h + pad, w + pad), BORDER, np.uint8)
    tiles[:, :per, :h, :w] = scaled(a, lo, hi).reshape(t, per, h, w)
    blocks = tiles.reshape(t, rows, cols, h + pad, w + pad).transpose(0, 1, 3, 2, 4)
    blocks = blocks.reshape(t, rows * (h + pad), cols * (w + pad))
    sep = np.full((rows * (h + pad), gap), GAP, np.uint8)
    parts = [p for b in blocks for p in (sep, b)][1:]
    layout = dict(towers=t, per=per, cols=cols, rows=rows, h=h, w=w, pad=pad, gap=gap, lo=lo, hi=hi)
    return Image.fromarray(np.concatenate(parts, 1)), layout


def channel_at(layout: dict, x: int, y: int) -> int | None:
    """The channel whose tile holds pixel (x, y) of grid()'s picture; None on a border or gap."""
    tw, th = layout["w"] + layout["pad"], layout["h"] + layout["pad"]
    block = layout["cols"] * tw + layout["gap"]
    tower, xr = divmod(x, block)
    col, row = xr // tw, y // th
    if tower >= layout["towers"] or xr % tw >= layout["w"] or y % th >= layout["h"] or col >= layout["cols"]:
        return None
    j = row * layout["cols"] + col
    return tower * layout["per"] + j if j < layout["per"] else None


def picture(img: torch.Tensor) -> Image.Image:
    """A (C, H, W) uint8 image (RGB or grey) as a PIL image."""
    return Image.fromarray(img.permute(1, 2, 0).squeeze(-1).numpy())


def enlarged(m: np.ndarray, lo: float, hi: float, side: int = 224) -> Image.Image:
    """One map, scaled to [lo, hi] and blown up (nearest: every unit a visible square)."""
    f = max(1, side // max(m.shape))
    return Image.fromarray(scaled(m, lo, hi)).resize((m.shape[1] * f, m.shape[0] * f), Image.NEAREST)


def lrn_explained(norm: LocalResponseNorm, before: torch.Tensor, after: torch.Tensor, c: int) -> dict:
    """What LRN did to channel c (§3.3): b = a / (k + alpha * sum of a_j^2 over the n channels
    around c)^beta, worked through in float64 at the channel's strongest unit, beside the
    network's own output there and the whole map's numbers before and after."""
    a, b = before.double(), after.double()
    ac, bc = a[c], b[c]
    y, x = divmod(int(ac.argmax()), ac.shape[1])
    half = norm.size // 2
    lo, hi = max(0, c - half), min(a.shape[0] - 1, c + half)
    window = a[lo : hi + 1, y, x]
    alpha = effective_alpha(norm.alpha, norm.size, norm.convention)
    sum_sq = float((window**2).sum())
    denominator = (norm.k + alpha * sum_sq) ** norm.beta
    kept = torch.where(ac > 0, bc / ac.clamp_min(1e-30), torch.zeros_like(ac))
    return dict(
        channel=c,
        y=y,
        x=x,
        n=norm.size,
        k=norm.k,
        alpha=norm.alpha,
        convention=norm.convention,
        alpha_effective=alpha,
        beta=norm.beta,
        window=list(range(lo, hi + 1)),
        values=window.tolist(),
        a=float(ac[y, x]),
        sum_sq=sum_sq,
        denominator=denominator,
        b_formula=float(ac[y, x]) / denominator,
        b_network=float(bc[y, x]),
        max_before=float(ac.max()),
        max_after=float(bc.max()),
        mean_before=float(ac.mean()),
        mean_after=float(bc.mean()),
        kept_min=float(kept[ac > 0].min()) if (ac > 0).any() else 0.0,
        kept_max=float(kept.max()),
        kept=kept.numpy(),
    )


def fill_colour(mean, channels: int) -> torch.Tensor:
    """The occluder's colour (uint8 per channel): the card's mean pixel, which the network sees
    as zero; mid-grey for weights trained without a mean."""
    m = torch.tensor(mean, dtype=torch.float64)
    m = m.mean((1, 2)) if m.dim() == 3 else m
    m = m.expand(channels) if m.numel() == 1 else m
    return (
        torch.full((channels,), 128, dtype=torch.uint8)
        if not bool(m.any())
        else (m * 255).round().clamp(0, 255).to(torch.uint8)
    )


def positions(side: int, size: int, stride: int) -> list[int]:
    """Where the square's corner goes along one side: every stride, the last one at the edge."""
    p = list(range(0, side - size + 1, stride))
    return p + [side - size] if p[-1] != side - size else p


@torch.no_grad()
def occlusion(
    model: nn.Module,
    pipeline,
    stored: torch.Tensor,
    target: int,
    size: int,
    stride: int,
    fill: torch.Tensor,
    cancel,
    lock,
    batch: int = 16,
):
    """Zeiler & Fergus (2014, §4.2 and Fig. 7): a square of the mean colour slid over the crop the
    network sees, the probability of class `target` recorded at every position. Yields
    (done, total, heat) after each batch; heat[i, j] is the probability with the square's corner
    at (ys[i], xs[j]) (NaN until computed). Stops early once `cancel` (an Event) is set."""
    crop = pipeline.crop
    off = (stored.shape[1] - crop) // 2, (stored.shape[2] - crop) // 2  # Pipeline.eval's centre crop
    ys, xs = positions(crop, size, stride), positions(crop, size, stride)
    spots = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    heat = np.full((len(ys), len(xs)), np.nan)
    for s in range(0, len(spots), batch):
        if cancel.is_set():
            return
        chunk = spots[s : s + batch]
        imgs = stored.expand(len(chunk), -1, -1, -1).clone()
        for n, (i, j) in enumerate(chunk):
            top, left = off[0] + ys[i], off[1] + xs[j]
            imgs[n, :, top : top + size, left : left + size] = fill[:, None, None]
        x = pipeline.eval(imgs)
        with lock:
            p = F.softmax(model(x).float(), 1)[:, target]
        for (i, j), v in zip(chunk, p.tolist()):
            heat[i, j] = v
        yield min(s + batch, len(spots)), len(spots), heat


def heat_picture(heat: np.ndarray, crop: torch.Tensor, size: int, stride: int) -> Image.Image:
    """Each pixel coloured by the mean probability over the squares that covered it, from red (the
    map's lowest: the decision rests there) to blue (its highest), laid over the grey image at
    60 %. The scale is the map's own range (the page prints it): a net barely moved by any
    square still shows where it moved most."""
    side = crop.shape[1]
    ys, xs = positions(side, size, stride), positions(side, size, stride)
    total, count = np.zeros((side, side)), np.zeros((side, side))
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            total[y : y + size, x : x + size] += heat[i, j]
            count[y : y + size, x : x + size] += 1
    v = total / np.maximum(count, 1)
    lo, hi = float(heat.min()), float(heat.max())
    colours = np.array([(165, 0, 38), (244, 109, 67), (255, 255, 191), (116, 173, 209), (49, 54, 149)], float)
    t = ((v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)).clip(0, 1) * (len(colours) - 1)
    i = np.minimum(t.astype(int), len(colours) - 2)
    rgb = colours[i] + (colours[i + 1] - colours[i]) * (t - i)[..., None]
    grey = crop.float().mean(0).numpy()[..., None]
    return Image.fromarray(np.rint(0.6 * rgb + 0.4 * grey).astype(np.uint8))
