"""`alexnet report RUN --out report.html`: one self-contained page about a training run — its
config, learning curves, final metrics, confusion matrix, conv1 filters and sample predictions.
Images are embedded as data: URIs; no scripts, fonts or style sheets are fetched."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import torch
from torch.utils.data import Subset

from ..data import Decoding, make_loader, open_dataset
from ..errors import BadInput
from ..evaluation.metrics import evaluate_loader, predict_probs
from ..interop.pretrained import load_pretrained
from ..jsonio import dumps
from ..training.checkpoint import read_metrics
from ..training.config import load_config_file
from ..untrusted import text
from . import figures

CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f4f4f4}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.8em}
.cm td{width:2.2em;text-align:center}img{max-width:100%}"""


def _png(path_or_img) -> str:
    data = Path(path_or_img).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _table(rows: list[dict], keys: list[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = ""
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k, "")
            try:
                v = f"{float(v):.4g}"
            except (TypeError, ValueError):
                v = html.escape(str(v))
            cells.append(f"<td>{v}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


NAME_MAX = 255  # bytes in a file name (Linux, macOS, Windows)
PARTS = ".parts"  # the folder beside the page where its figures are drawn first
TABLE_MAX = 50  # classes in the page's confusion table; beyond, the most frequent confusions


def _confusion(tally, names: list[str]) -> str:
    """Counts shaded by their share of the true class's row, over the classes that occur (as a
    true or a predicted class); with more than TABLE_MAX of them, the most frequent mistakes."""
    true, pred, n = tally.confusion()
    present = sorted(set(true.tolist()) | set(pred.tolist()))
    if len(present) > TABLE_MAX:
        wrong = (true != pred).nonzero().flatten()
        top = wrong[n[wrong].argsort(descending=True)[:20]].tolist()
        rows = "".join(
            f"<tr><td>{html.escape(names[true[i]])}</td><td>{html.escape(names[pred[i]])}</td>"
            f"<td>{int(n[i])}</td></tr>"
            for i in top
        )
        return (
            f"<p>{len(present)} classes occur: the {len(top)} most frequent mistakes.</p>"
            f"<table><tr><th>true</th><th>predicted</th><th>images</th></tr>{rows}</table>"
        )
    at = {c: i for i, c in enumerate(present)}
    conf = torch.zeros(len(present), len(present), dtype=torch.long)
    conf[[at[t] for t in true.tolist()], [at[p] for p in pred.tolist()]] = n
    classes = [names[c] for c in present]
    totals = conf.sum(1, keepdim=True).clamp(min=1)
    head = "".join(f"<th>{html.escape(c[:10])}</th>" for c in classes)
    rows = ""
    for i, name in enumerate(classes):
        cells = ""
        for j in range(len(classes)):
            share = float(conf[i, j] / totals[i])
            shade = int(255 - 180 * share)
            color = f"rgb({shade},{shade},255)" if i != j else f"rgb({shade},255,{shade})"
            cells += f'<td style="background:{color}">{int(conf[i, j])}</td>'
        rows += f"<tr><th>{html.escape(name[:14])}</th>{cells}</tr>"
    return f'<table class="cm"><tr><th>true \\ predicted</th>{head}</tr>{rows}</table>'


def build_report(
    run_dir: str | Path,
    out: str | Path,
    max_images: int = 2000,
    samples: int = 8,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    run, out = Path(run_dir), Path(out)
    if not out.name or out.name in (".", ".."):
        raise BadInput(f"--out {str(out)!r}: expected a file name for the page (e.g. report.html)")
    if len(os.fsencode(out.name + PARTS)) > NAME_MAX:  # said now, not after the evaluation
        raise BadInput(
            f"--out {str(out)!r}: a file name of {len(os.fsencode(out.name)):,} bytes; the page "
            f"and its {PARTS} folder need names of at most {NAME_MAX - len(PARTS)}"
        )
    cfg_path, metrics_path = run / "config.yaml", run / "metrics.csv"
    weights = run / "best.pt" if (run / "best.pt").exists() else run / "last.pt"
    if not cfg_path.exists() or not weights.exists():
        raise FileNotFoundError(
            f"{run}: not a run folder of `alexnet train` (config.yaml and a checkpoint needed)"
        )
    cfg = load_config_file(cfg_path, flag="")  # a copied run folder is a stranger's file too
    data = cfg.get("val_data") or cfg.get("data")
    if not isinstance(data, str) or not data or not isinstance(cfg.get("labels"), (str, type(None))):
        raise BadInput(f"{cfg_path}: names no data (expected data: PATH, as `alexnet train` writes)")
    rows = read_metrics(metrics_path) if metrics_path.exists() else []
    try:
        summary = (
            json.loads(text(run / "summary.json", str(run / "summary.json")))
            if (run / "summary.json").exists()
            else {}
        )
    except json.JSONDecodeError:
        raise BadInput(f"{run / 'summary.json'}: not JSON") from None
    model, card = load_pretrained(weights)
    classes = [card.class_name(i) for i in range(card.num_classes)]
    tmp = out.with_name(out.name + PARTS)
    tmp.mkdir(parents=True, exist_ok=True)
    parts = []
    if rows:
        curves = _png(figures.curves(rows, tmp / "c.png"))
        parts.append(("Learning curves", f'<img alt="curves" src="{curves}">'))
        keys = [
            "epoch",
            "step",
            "train_loss",
            "train_top1_err",
            "val_top1_err",
            "val_top5_err",
            "lr",
            "img_per_s",
            "seconds",
        ]
        parts.append(("Metrics per validation", _table(rows, keys)))
    ds = open_dataset(
        data,
        "val",
        Decoding(card.resize, card.resize),
        labels_file=cfg.get("labels"),
        classes=card.classes or None,
        classes_from=f"the checkpoint in {run}",
    )
    card.check_channels(ds.source.channels, data, str(weights))
    pipeline = card.pipeline()
    # every k-th image, so that a class-sorted validation set is covered evenly
    stride = max(1, -(-len(ds) // max_images))
    sub = Subset(ds, range(0, len(ds), stride))
    sub.source = ds.source
    tally, _ = evaluate_loader(
        [model],
        make_loader(sub, 64, shuffle=False, workers=workers),
        pipeline,
        card.num_classes,
        torch.device("cpu"),
        "center",
        progress=progress,
    )
    res = tally.result()
    final = (
        f"<p>{weights.name} on {res['images']} validation images (one in {stride}, centre crop): top-1 "
        f"error <b>{res['top1_err']:.2%}</b>, top-5 error <b>{res['top5_err']:.2%}</b>.</p>"
    )
    if summary:
        final += f"<pre>{html.escape(dumps(summary))}</pre>"
    parts.insert(0, ("Final metrics", final))
    parts.append(("Confusion matrix", _confusion(tally, classes)))
    parts.append(
        (
            "conv1 filters (paper Fig. 3)",
            f'<img alt="filters" src="{_png(figures.conv1_filters(model, tmp / "f.png"))}">',
        )
    )
    step = max(1, len(ds) // samples)
    picks = [ds[i] for i in range(0, len(ds), step)[:samples]]  # spread over the (sorted) classes
    picks = [p for p in picks if p[0] is not None]
    if picks:
        imgs = torch.stack([p[0] for p in picks])
        probs = predict_probs([model], imgs, pipeline, "center")
        p, idx = probs.topk(min(5, probs.shape[1]), 1)
        top = [[(classes[j], v) for j, v in zip(ix, pr)] for ix, pr in zip(idx.tolist(), p.tolist())]
        truth = [classes[q[1]] if q[1] >= 0 else None for q in picks]
        grid = figures.prediction_grid(list(imgs), top, tmp / "p.png", truth=truth)
        parts.append(
            ("Sample predictions (paper Fig. 4, left)", f'<img alt="predictions" src="{_png(grid)}">')
        )
    parts.append(("Configuration", f"<pre>{html.escape(cfg_path.read_text())}</pre>"))
    body = "".join(f"<h2>{html.escape(t)}</h2>{c}" for t, c in parts)
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(run.name)} — alexnet report</title><style>{CSS}</style></head>"
        f"<body><h1>Run {html.escape(str(run))}: {html.escape(card.model)}</h1>"
        f"{body}</body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return out
