"""Weights by name: the table, the verified download (from a loopback HTTP server, never the
internet), resume, refusal of wrong files, the offline line, and the ImageNet category list."""

import dataclasses
import hashlib
import http.server
import threading
from importlib import resources

import numpy as np
import pytest
import torch

import alexnet
from alexnet.cli import main
from alexnet.download import fetch_file
from alexnet.interop import hub
from conftest import write_image
from test_interop import CAFFENET_ORDER, SHAPES, caffemodel_bytes, to_npy_dict


class Files(http.server.ThreadingHTTPServer):
    """Serves `files` (name -> bytes) with HTTP Range support; `cut[name] = n` sends n bytes of
    the next response for name and then drops the connection; `log` records (name, Range, bytes)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.cut, self.log, self.ignore_range = {}, {}, [], False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        srv, name = self.server, self.path.lstrip("/")
        data = srv.files.get(name)
        if data is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].rstrip("-")) if rng and not srv.ignore_range else 0
        if start >= len(data) and rng and not srv.ignore_range:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:][: srv.cut.pop(name, None)]
        self.wfile.write(body)
        srv.log.append((name, rng, len(body)))
        self.close_connection = True


@pytest.fixture
def server():
    srv = Files()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- the downloader ---------------------------------------------------------------------------
def test_download_verifies_and_caches(server, tmp_path):
    data = np.random.default_rng(0).bytes(3 << 20)
    server.files["w.bin"] = data
    dest = tmp_path / "c" / "w.bin"
    sums = {"sha256": sha256(data), "md5": hashlib.md5(data).hexdigest()}
    assert fetch_file([f"{server.url}/w.bin"], dest, sums, len(data), progress=False) == dest
    assert dest.read_bytes() == data and not dest.with_name("w.bin.part").exists()
    fetch_file([f"{server.url}/w.bin"], dest, sums, len(data), progress=False)  # cached: no request
    assert len(server.log) == 1
    # a prefix is enough where that is all that was published (torchvision's file names)
    dest.unlink()
    fetch_file([f"{server.url}/missing", f"{server.url}/w.bin"], dest, {"sha256": sha256(data)[:8]})
    assert dest.read_bytes() == data


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = np.random.default_rng(1).bytes(5 << 20 | 123)
    server.files["w.bin"], server.cut["w.bin"] = data, 2 << 20
    dest, url = tmp_path / "w.bin", f"{server.url}/w.bin"
    with pytest.raises(
        FileNotFoundError, match=r"could not download w.bin .*put w.bin \(from .*/w.bin\) at "
    ):
        fetch_file([url], dest, {"sha256": sha256(data)}, len(data), progress=False)
    part = tmp_path / "w.bin.part"
    assert part.stat().st_size == 2 << 20 and not dest.exists()
    fetch_file([url], dest, {"sha256": sha256(data)}, len(data), progress=False)
    assert dest.read_bytes() == data and not part.exists()
    assert server.log[-1] == ("w.bin", f"bytes={2 << 20}-", len(data) - (2 << 20))  # only the rest
    # a server that ignores Range: the partial file is started over, the result is still right
    dest.unlink()
    server.ignore_range, server.cut["w.bin"] = True, 1 << 20
    with pytest.raises(FileNotFoundError):
        fetch_file([url], dest, {"sha256": sha256(data)}, len(data), progress=False)
    fetch_file([url], dest, {"sha256": sha256(data)}, len(data), progress=False)
    assert dest.read_bytes() == data and server.log[-1][2] == len(data)


def test_wrong_file_is_refused_and_not_cached(server, tmp_path):
    server.files["w.bin"] = b"not the weights" * 1000
    dest = tmp_path / "w.bin"
    with pytest.raises(ValueError, match=r"w.bin fails its check \(checksum mismatch: sha1 .*deleted"):
        fetch_file([f"{server.url}/w.bin"], dest, {"sha1": "9116a64c0fbe4459d18f4bb6b56d647b63920377"})
    assert list(tmp_path.iterdir()) == [tmp_path / "w.bin.lock"]
    with pytest.raises(ValueError, match="size 15,000 bytes, expected 15,001"):
        fetch_file([f"{server.url}/w.bin"], dest, {}, size=15_001)
    # a file already in place that fails is refused but left alone (it may be the user's)
    dest.write_bytes(b"hand-placed")
    with pytest.raises(ValueError, match="w.bin: checksum mismatch: sha256 .*delete the file"):
        fetch_file([f"{server.url}/w.bin"], dest, {"sha256": "0" * 64})
    assert dest.read_bytes() == b"hand-placed"


# ---- the table ----------------------------------------------------------------------------------
def test_table_holds_the_published_values():
    w = hub.WEIGHTS
    assert list(w) == ["torchvision", "bvlc_alexnet", "caffenet", "bvlc_alexnet.npy"]
    tv = w["torchvision"]
    assert tv.urls[0] == "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
    assert tv.checksums["sha256"].startswith(tv.file.split("-")[-1].split(".")[0])  # torchvision's rule
    assert (tv.size, tv.model, tv.licence) == (244_408_911, "alexnet_owt", "BSD-3-Clause")
    assert (w["bvlc_alexnet"].checksums["sha1"], w["caffenet"].checksums["sha1"]) == (
        "9116a64c0fbe4459d18f4bb6b56d647b63920377",
        "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46",
    )
    acc = {n: (e.accuracy["top1"], e.accuracy["top5"]) for n, e in w.items()}
    assert acc == {
        "torchvision": (56.522, 79.066),
        "bvlc_alexnet": (57.1, 80.2),
        "caffenet": (57.4, 80.4),
        "bvlc_alexnet.npy": (57.1, 80.2),
    }
    assert (w["caffenet"].model, w["bvlc_alexnet"].model, w["bvlc_alexnet.npy"].model) == (
        "caffenet",
        "alexnet_caffe",
        "alexnet_caffe",
    )
    assert w["bvlc_alexnet.npy"].checksums == {} and w["bvlc_alexnet.npy"].size is None  # none published


def test_weights_command_and_mirror(cache, monkeypatch, capsys):
    assert main(["weights"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "file", "checksum", "size", "top-1/top-5", "licence", "cached"]
    assert out[1].split()[:3] == ["torchvision", "alexnet-owt-7be5be79.pth", "sha256:7be5be791159"]
    assert out[1].endswith("no") and "none published" in out[4] and f"cache: {cache}" in out[5]
    monkeypatch.setenv("ALEXNET_WEIGHTS_MIRROR", "file:///srv/weights/")
    assert hub.urls(hub.WEIGHTS["caffenet"]) == ["file:///srv/weights/bvlc_reference_caffenet.caffemodel"]


def test_offline_is_one_line(cache, monkeypatch, capsys, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ALEXNET_WEIGHTS_MIRROR", f"http://127.0.0.1:{port}")
    img = write_image(tmp_path / "a.jpg", (64, 64))
    assert main(["predict", str(img), "--weights", "caffenet"]) == 1  # a failure at run time, not bad input
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"http://127.0.0.1:{port}/bvlc_reference_caffenet.caffemodel" in err
    assert f"at {cache / 'bvlc_reference_caffenet.caffemodel'}" in err
    assert main(["predict", str(img), "--weights", "alexnet_resnet"]) == 2
    assert "nor a name from `alexnet weights` (torchvision, bvlc_alexnet" in capsys.readouterr().err


# ---- every name downloads, verifies and predicts ------------------------------------------------
@pytest.fixture(scope="module")
def caffe_blobs():
    g = np.random.default_rng(0)
    return {
        n: [g.standard_normal(s, dtype=np.float32) * 0.01, g.standard_normal(s[0], dtype=np.float32) * 0.1]
        for n, s in SHAPES.items()
    }


def stand_in(name, blobs, tmp_path) -> bytes:
    """A file in the exact upstream layout of the named weights (random values)."""
    if name == "torchvision":
        torch.save(alexnet.create_model("alexnet_owt", seed=0).state_dict(), tmp_path / "tv.pth")
        return (tmp_path / "tv.pth").read_bytes()
    if name == "bvlc_alexnet.npy":
        np.save(tmp_path / "w.npy", to_npy_dict(blobs), allow_pickle=True)
        return (tmp_path / "w.npy").read_bytes()
    order = (
        CAFFENET_ORDER
        if name == "caffenet"
        else [
            {"pool1": "norm1", "norm1": "pool1", "pool2": "norm2", "norm2": "pool2"}.get(n, n)
            for n in CAFFENET_ORDER
        ]
    )
    return caffemodel_bytes(blobs, order)


@pytest.mark.parametrize("name", list(hub.WEIGHTS))
def test_every_name_downloads_verifies_and_predicts(
    name, server, cache, caffe_blobs, monkeypatch, tmp_path, capsys
):
    entry = hub.WEIGHTS[name]
    data = stand_in(name, caffe_blobs, tmp_path)
    server.files[entry.file] = data
    if entry.checksums:  # the stand-in's digests in place of the real file's
        monkeypatch.setitem(
            hub.WEIGHTS, name, dataclasses.replace(entry, checksums={"sha256": sha256(data)}, size=len(data))
        )
    monkeypatch.setenv("ALEXNET_WEIGHTS_MIRROR", server.url)
    img = write_image(tmp_path / "img.jpg", (300, 260))
    with pytest.warns(UserWarning, match="no published checksum") if not entry.checksums else _nothing():
        assert main(["predict", str(img), "--weights", name, "--topk", "3", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = {n for _, n in alexnet.imagenet_categories()}
    assert len(lines) == 4 and all(line.split("%", 1)[1].strip() in names for line in lines[1:])
    assert (cache / entry.file).read_bytes() == data and not (cache / (entry.file + ".part")).exists()
    assert [n for n, _, _ in server.log] == [entry.file]
    if not entry.checksums:  # trust on first use: the pin now guards the cached copy
        assert (cache / (entry.file + ".sha256")).read_text().strip() == sha256(data)
        (cache / entry.file).write_bytes(data[:-8] + b"tampered")
        with pytest.raises(ValueError, match="checksum mismatch"):
            alexnet.load_pretrained(name)


def test_readme_python_example_runs(server, cache, caffe_blobs, monkeypatch, tmp_path, capsys):
    """The README's "In Python" block, pasted as is, with the torchvision file from a loopback mirror."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"## In Python\n\n```python\n(.*?)```", readme, re.S).group(1)
    assert len(block.strip().splitlines()) <= 10
    data = stand_in("torchvision", caffe_blobs, tmp_path)
    entry = hub.WEIGHTS["torchvision"]
    server.files[entry.file] = data
    monkeypatch.setitem(
        hub.WEIGHTS,
        "torchvision",
        dataclasses.replace(entry, checksums={"sha256": sha256(data)}, size=len(data)),
    )
    monkeypatch.setenv("ALEXNET_WEIGHTS_MIRROR", server.url)
    write_image(tmp_path / "photo.jpg", (300, 260))
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    top5 = eval(capsys.readouterr().out.strip())
    names = {n for _, n in alexnet.imagenet_categories()}
    assert len(top5) == 5 and all(n in names for n, _ in top5)
    assert scope["fc7"].shape == (1, 4096) and sum(p.numel() for p in scope["net"].parameters()) == 60_965_224


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_wrong_download_by_name_is_refused(server, cache, monkeypatch):
    server.files["bvlc_reference_caffenet.caffemodel"] = b"\x00" * 4096
    monkeypatch.setenv("ALEXNET_WEIGHTS_MIRROR", server.url)
    with pytest.raises(ValueError, match=r"fails its check \(size 4,096 bytes, expected 243,862,418"):
        alexnet.load_pretrained("caffenet")
    server.files["bvlc_alexnet.npy"] = b"\x93NUMPY junk"
    with pytest.raises(ValueError, match=r"bvlc_alexnet.npy fails its check .*damaged .npy header"):
        alexnet.load_pretrained("bvlc_alexnet.npy")
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == []


# ---- the 1000 ILSVRC-2012 categories -----------------------------------------------------------
def test_imagenet_categories():
    cats = alexnet.imagenet_categories()
    wnids = [w for w, _ in cats]
    assert len(cats) == 1000 and len(set(wnids)) == 1000 and wnids == sorted(wnids)  # standard order
    assert cats[0] == ("n01440764", "tench") and cats[999] == ("n15075141", "toilet tissue")
    # a few indices every ImageNet user knows (torchvision / Keras numbering)
    assert [cats[i][1] for i in (1, 207, 281, 409, 950)] == [
        "goldfish",
        "golden retriever",
        "tabby",
        "analog clock",
        "orange",
    ]


def test_categories_agree_with_the_imagenet_sample(data_root):
    """The sample names files <wnid>_<id>_<label>.jpg with ILSVRC's *detection* (DET-200) labels.
    Of its 200 wnids, 150 are classification classes: for each, the label must be one of that
    wnid's synonyms in our list, save 5 that DET renamed."""
    folder = data_root / "imagenet-sample"
    if not folder.is_dir():
        pytest.skip("imagenet-sample is absent")
    pairs = {(f.name.split("_")[0], f.stem.split("_", 2)[2]) for f in folder.glob("*.jpg")}
    text = resources.files("alexnet").joinpath("imagenet_synsets.txt").read_text()
    synonyms = {
        line.split(" ", 1)[0]: [s.strip().lower() for s in line.split(" ", 1)[1].split(",")]
        for line in text.splitlines()
    }
    assert len(pairs) == 200
    shared = {(w, label) for w, label in pairs if w in synonyms}
    off = {w for w, label in shared if label.replace("_", " ").lower() not in synonyms[w]}
    assert len(shared) == 150
    assert off == {"n02870880", "n03124170", "n03991062", "n04131690", "n04591157"}  # bookshelf/bookcase...
