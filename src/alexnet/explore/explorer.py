"""One network opened for the page: weights and card, FOLDER, the features file, what each image
gave (kept by content, so two tabs on one image share it and never mix two), and one lock
around the network (a forward pass already uses every core; two at once only thrash)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ImageDraw

from ..analysis.features import index_dataset, layer_output, load_index
from ..analysis.features import neighbours as nearest
from ..analysis.figures import data_url, filter_image, first_layer
from ..data.decode import BadImage
from ..data.transforms import fixed_crop
from ..errors import BadInput
from ..interop.pretrained import load_pretrained
from . import network as N
from .folder import Folder, TopPatches

MAX_POSITIONS = 4096  # occlusion squares per map (a 4-pixel stride on a 227 crop is 2,916)


@dataclass
class View:
    """What one image gave: the stored image, the crop the network saw, every stage's maps and
    the class probabilities."""

    id: str
    name: str
    stored: torch.Tensor
    crop: torch.Tensor
    outs: list = field(repr=False)
    probs: torch.Tensor = field(repr=False)
    page: dict | None = field(default=None, repr=False)


class Explorer:
    """Use `Explorer.load(weights, ...)`; the constructor takes a network already built."""

    def __init__(
        self,
        model,
        card,
        weights: str,
        images: str | None = None,
        features: str | None = None,
        keep: int = 16,
    ):
        self.weights, self.model, self.card = str(weights), model.eval(), card
        self.pipeline = self.card.pipeline()
        self.plan = N.stages(self.model)
        kernels, self.towers = first_layer(self.model)
        self.filters = data_url(filter_image(kernels, self.towers))
        self.lock = threading.Lock()
        self._views: OrderedDict[str, View] = OrderedDict()
        self._views_lock = threading.Lock()
        self.keep = keep
        probe = torch.zeros(1, self.card.in_channels, self.pipeline.crop, self.pipeline.crop)
        outs, _ = N.walk(self.model, self.plan, probe)
        self.shapes = [tuple(o.shape[1:]) for o in outs]
        self.folder = Folder(images) if images else None
        self.patches = TopPatches(len(self.folder), self.shapes) if self.folder else None
        self.index, self.index_note, self._dataset = None, "", None
        if features:
            self._open_index(features, probe)
        self.stop = threading.Event()

    @classmethod
    def load(
        cls, weights: str, images: str | None = None, features: str | None = None, labels: str | None = None
    ) -> Explorer:
        """Any weights the package loads (a name from `alexnet weights`, a file, a run's
        checkpoint), with their card's preprocessing and class names."""
        model, card = load_pretrained(weights, labels=labels)
        return cls(model, card, weights, images, features)

    # ---- the features file (§6.1) ---------------------------------------------------------
    def _open_index(self, path: str, probe: torch.Tensor) -> None:
        index = load_index(path, "--features")
        layer = str(index["layer"])
        try:
            with torch.no_grad():
                dim = layer_output(self.model, probe, layer).shape[1]
        except ValueError as e:
            raise BadInput(f"--features {path}: {layer} features, but {e}") from None
        if dim != index["features"].shape[1]:
            raise BadInput(
                f"--features {path}: {index['features'].shape[1]}-d {layer} features, but "
                f"--weights {self.weights} gives {dim}-d ones (made with other weights?)"
            )
        if str(index["weights"]) != self.weights:
            self.index_note = (
                f"the features were made with --weights {index['weights']}, the page uses "
                f"{self.weights}: the same kind of network, but distances mean less"
            )
        self.index = index

    # ---- FOLDER's patch index, filled in the background ------------------------------------
    def start_indexing(self) -> threading.Thread | None:
        if not self.folder:
            return None
        t = threading.Thread(target=self.index_folder, name="explore-index", daemon=True)
        t.start()
        return t

    def index_folder(self, batch: int = 4) -> None:
        names = self.folder.names
        for start in range(0, len(names), batch):
            if self.stop.is_set():
                return
            imgs, rows = [], []
            for i in range(start, min(len(names), start + batch)):
                try:
                    imgs.append(self.card.decode(self.folder.read(names[i]), names[i]))
                    rows.append(i)
                except (BadImage, OSError):
                    self.patches.unreadable += 1
            if imgs:
                x = self.pipeline.eval(torch.stack(imgs))
                with self.lock:  # a batch of 4 at a time: a click waits for one batch at most
                    outs, _ = N.walk(self.model, self.plan, x)
                self.patches.add(rows, outs)
            self.patches.done = min(len(names), start + batch)

    # ---- one image ---------------------------------------------------------------------------
    def open(self, raw: bytes, name: str) -> View:
        """An image's bytes through the network (BadImage for anything the package refuses)."""
        key = hashlib.sha256(raw).hexdigest()[:24]
        with self._views_lock:
            if key in self._views:
                self._views.move_to_end(key)
                return self._views[key]
        stored = self.card.decode(raw, name)
        x = self.pipeline.eval(stored[None])
        with self.lock:
            outs, logits = N.walk(self.model, self.plan, x)
        probs = F.softmax(logits.float(), 1)[0]
        view = View(key, name, stored, self.crop(stored), [o[0] for o in outs], probs)
        with self._views_lock:
            self._views[key] = view
            while len(self._views) > self.keep:
                self._views.popitem(last=False)
        return view

    def crop(self, stored: torch.Tensor) -> torch.Tensor:
        """The part of a stored image the network sees (Pipeline.eval's centre crop)."""
        return fixed_crop(stored[None], self.pipeline.crop, "centre")[0][0]

    def view(self, key: str) -> View:
        with self._views_lock:
            if key not in self._views:
                raise LookupError("this image is no longer held by the server; pick it again")
            return self._views[key]

    def stage(self, name: str) -> int:
        for i, st in enumerate(self.plan):
            if st.name == name:
                return i
        raise LookupError(f"no stage {name[:40]!r} in {self.card.model}")

    def analyze(self, view: View) -> dict:
        """The page for one image: top-5 (Fig. 4, left) and every stage's maps."""
        if view.page is None:
            start = time.perf_counter()
            p, idx = view.probs.topk(min(5, len(view.probs)))
            stages = []
            for st, o in zip(self.plan, view.outs):
                img, layout = N.grid(o, self.towers)
                stages.append(
                    dict(
                        name=st.name,
                        kind=st.kind,
                        shape=list(o.shape),
                        png=data_url(img),
                        layout=layout,
                        field=st.size,
                    )
                )
            view.page = dict(
                id=view.id,
                name=view.name,
                input=data_url(N.picture(view.crop)),
                top5=[
                    dict(name=self.card.class_name(i), index=i, p=v) for i, v in zip(idx.tolist(), p.tolist())
                ],
                stages=stages,
                render_ms=round((time.perf_counter() - start) * 1000, 1),
            )
        return view.page

    def channel(self, key: str, stage: str, c: int) -> dict:
        """One channel enlarged, its strongest unit's field outlined on the input, and the FOLDER
        patches that drive it most."""
        view, s = self.view(key), self.stage(stage)
        maps = view.outs[s]
        if not 0 <= c < maps.shape[0]:
            raise BadInput(f"channel {c}: {stage} has channels 0..{maps.shape[0] - 1}")
        m = maps[c].float().numpy()
        y, x = divmod(int(m.argmax()), m.shape[1])
        st, side = self.plan[s], self.pipeline.crop
        box = st.box(y, x, side)
        pic = N.picture(view.crop).convert("RGB")
        ImageDraw.Draw(pic).rectangle(
            [box[0], box[1], box[2] - 1, box[3] - 1], outline=(255, 40, 40), width=2
        )
        lo = min(float(m.min()), 0.0)
        out = dict(
            stage=stage,
            channel=c,
            shape=list(m.shape),
            max=float(m.max()),
            mean=float(m.mean()),
            active=float((m > 0).mean()),
            y=y,
            x=x,
            box=list(box),
            field=st.size,
            png=data_url(N.enlarged(m, lo, float(m.max()))),
            input=data_url(pic),
            patches=[],
        )
        if self.patches is not None:
            out["indexed"], out["images"] = self.patches.done, len(self.folder)
            for i, v, py, px in self.patches.top(s, c):
                name = self.folder.names[i]
                try:
                    stored = self.card.decode(self.folder.read(name), name)
                except (BadImage, OSError):
                    continue
                crop = N.picture(self.crop(stored)).crop(st.box(py, px, side))
                out["patches"].append(dict(name=name, value=v, png=data_url(crop.resize((72, 72)))))
        return out

    def lrn(self, key: str, stage: str | None = None, c: int | None = None) -> dict:
        """What LRN did to one channel of this image (§3.3), at the first LRN unless `stage`."""
        norms = [st.name for st in self.plan if st.kind == "norm"]
        if not norms:
            return dict(stages=[], note=f"{self.card.model} has no local response normalisation")
        s = self.stage(stage or norms[0])
        if self.plan[s].kind != "norm":
            raise BadInput(f"{stage} is not an LRN stage ({', '.join(norms)})")
        view = self.view(key)
        before, after = view.outs[s - 1], view.outs[s]
        if c is None:
            c = int(before.flatten(1).max(1).values.argmax())
        if not 0 <= c < before.shape[0]:
            raise BadInput(f"channel {c}: {self.plan[s].name} has channels 0..{before.shape[0] - 1}")
        e = N.lrn_explained(self.plan[s].modules[0], before, after, c)
        kept = e.pop("kept")
        hi = e["max_before"]
        e.update(
            stages=norms,
            stage=self.plan[s].name,
            before_stage=self.plan[s - 1].name,
            png_before=data_url(N.enlarged(before[c].float().numpy(), 0.0, hi)),
            png_after=data_url(N.enlarged(after[c].float().numpy(), 0.0, hi)),
            png_kept=data_url(N.enlarged(kept, 0.0, max(e["kept_max"], 1e-12))),
        )
        return e

    def neighbours(self, key: str, k: int = 8) -> dict:
        """The features file's images nearest this one (§6.1, Fig. 4 right)."""
        if self.index is None:
            return dict(items=[], note="start with --features FILE.npz (from `alexnet features`) to see them")
        view, layer = self.view(key), str(self.index["layer"])
        x = self.pipeline.eval(view.stored[None])
        with self.lock, torch.no_grad():
            q = layer_output(self.model, x, layer).float().numpy()
        dist, found = nearest(q, self.index["features"], k)
        if self._dataset is None:
            self._dataset = index_dataset(self.index)
        classes = [str(c) for c in self.index["classes"]]
        items = []
        for d, i in zip(dist[0].tolist(), found[0].tolist()):
            label = int(self.index["labels"][i])
            img = self._dataset[int(self.index["indices"][i])][0]
            name = classes[label] if 0 <= label < len(classes) and classes[label] else str(label)
            items.append(
                dict(
                    path=str(self.index["paths"][i]),
                    distance=d,
                    label=name,
                    png=data_url(N.picture(img), "JPEG") if img is not None else None,
                )
            )
        return dict(items=items, layer=layer, note=self.index_note)

    def occlusion(self, key: str, size: int, stride: int, cancel: threading.Event):
        """Progress events, then the map (Zeiler & Fergus 2014) of the top class."""
        view, side = self.view(key), self.pipeline.crop
        if not 1 <= size <= side or not 1 <= stride <= side:
            raise BadInput(f"occlusion square {size} and stride {stride}: each must be 1..{side}")
        n = len(N.positions(side, size, stride)) ** 2
        if n > MAX_POSITIONS:
            raise BadInput(f"occlusion: {n:,} positions; at most {MAX_POSITIONS:,} (a larger stride)")
        target = int(view.probs.argmax())
        heat = None
        fill = N.fill_colour(self.card.mean, self.card.in_channels)
        steps = N.occlusion(
            self.model, self.pipeline, view.stored, target, size, stride, fill, cancel, self.lock
        )
        for done, total, heat in steps:  # noqa: B007 - the last map is read after the loop
            yield dict(event="progress", done=done, total=total)
        if cancel.is_set() or heat is None:
            yield dict(event="cancelled")
            return
        i, j = np.unravel_index(int(np.argmin(heat)), heat.shape)
        ys = N.positions(side, size, stride)
        yield dict(
            event="done",
            target=self.card.class_name(target),
            p=float(view.probs[target]),
            min=float(heat.min()),
            max=float(heat.max()),
            at=[int(ys[j]), int(ys[i])],
            size=size,
            stride=stride,
            png=data_url(N.heat_picture(heat, view.crop, size, stride)),
        )
