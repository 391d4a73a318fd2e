"""`alexnet explore`: the stages and pictures it shows (against hand-computed references), its
numbers against `alexnet predict`, and the server's safety: hostile uploads, path traversal,
foreign hosts, two tabs at once, cancelled occlusion."""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import urllib.request
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("starlette", reason="the explore extra is not installed (pip install 'alexnet[explore]')")
pytest.importorskip(
    "starlette.testclient", reason="starlette's test client needs httpx2 (or httpx), in the dev extra"
)

from starlette.testclient import TestClient  # noqa: E402

from alexnet import create_model, list_models  # noqa: E402
from alexnet.analysis.features import extract  # noqa: E402
from alexnet.card import Card  # noqa: E402
from alexnet.cli import main  # noqa: E402
from alexnet.errors import BadInput  # noqa: E402
from alexnet.explore import Explorer  # noqa: E402
from alexnet.explore import network as N  # noqa: E402
from alexnet.explore.app import create_app, running  # noqa: E402
from alexnet.explore.folder import Folder  # noqa: E402
from alexnet.nn.local import LocallyConnected2d  # noqa: E402
from alexnet.nn.lrn import LocalResponseNorm, lrn_reference  # noqa: E402
from explore_helpers import image_folder, post, predict_cli  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory, paper_net_file):
    return paper_net_file, image_folder(tmp_path_factory.mktemp("explore") / "images")


@pytest.fixture(scope="module")
def ex(files):
    weights, folder = files
    e = Explorer.load(str(weights), str(folder))
    e.index_folder()  # what the server does in the background, done here before the tests look
    return e


@pytest.fixture(scope="module")
def client(ex):
    return TestClient(create_app(ex, hosts=["testserver"]), raise_server_exceptions=False)


# ---- the network's stages and pictures ----------------------------------------------------
def meta(name):
    with torch.device("meta"):
        return create_model(name)


def test_stages_follow_fig2_with_the_known_receptive_fields():
    plan = N.stages(meta("alexnet"))
    assert [s.name for s in plan] == [
        "conv1",
        "norm1",
        "pool1",
        "conv2",
        "norm2",
        "pool2",
        "conv3",
        "conv4",
        "conv5",
        "pool5",
    ]
    # receptive fields of AlexNet's units, by hand: 11, +2*4, +4*8, +2*8, +2*16 ... (jump 4, 8, 16, 32)
    fields = {s.name: (s.size, s.jump) for s in plan}
    assert fields == {
        "conv1": (11, 4),
        "norm1": (11, 4),
        "pool1": (19, 8),
        "conv2": (51, 8),
        "norm2": (51, 8),
        "pool2": (67, 16),
        "conv3": (99, 16),
        "conv4": (131, 16),
        "conv5": (163, 16),
        "pool5": (195, 32),
    }
    assert plan[3].start == -16  # conv2 pads 2 units of pool1's 8-pixel step
    assert [s.name for s in N.stages(meta("caffenet"))][:3] == ["conv1", "pool1", "norm1"]
    assert [s.name for s in N.stages(meta("alexnet_bn"))][:3] == ["conv1", "bn1", "pool1"]
    assert [s.name for s in N.stages(meta("alexnet_owt"))] == [
        "conv1",
        "pool1",
        "conv2",
        "pool2",
        "conv3",
        "conv4",
        "conv5",
        "pool5",
    ]


@pytest.mark.parametrize("name", list_models())
def test_every_layer_of_the_trunk_begins_a_stage_of_its_own(name):
    """No layer hides in the stage before it (cuda-convnet's locally connected layers once showed
    as "pool2"): each stage starts at one of the trunk's layers, all of them, in order."""
    model = meta(name)
    layers = (
        torch.nn.Conv2d,
        LocallyConnected2d,
        LocalResponseNorm,
        torch.nn.MaxPool2d,
        torch.nn.AvgPool2d,
        torch.nn.BatchNorm2d,
    )
    want = [(n, m) for n, m in model.features.named_children() if isinstance(m, layers)]
    plan = N.stages(model)
    assert [s.modules[0] for s in plan] == [m for _, m in want]
    if name.startswith("cifar_local"):  # cuda-convnet's names: rnorm for LRN
        assert [s.name for s in plan] == [n.replace("rnorm", "norm") for n, _ in want]
        assert [s.kind for s in plan][-2:] == ["local", "local"]


@pytest.mark.parametrize("towers", [1, 2])
def test_grid_puts_each_channel_where_channel_at_finds_it(towers):
    c, h, w = 10, 3, 4
    maps = torch.arange(1, c + 1, dtype=torch.float32)[:, None, None].expand(c, h, w).clone()
    img, layout = N.grid(maps, towers)
    a = np.asarray(img)
    per = c // towers
    assert (layout["per"], layout["cols"], layout["rows"]) == ((5, 3, 2) if towers == 2 else (10, 4, 3))
    seen = {}
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            ch = N.channel_at(layout, x, y)
            if ch is None:
                assert a[y, x] in (N.BORDER, N.GAP)
            else:  # one brightness scale for the stage: channel c is (c + 1) / C of white
                assert a[y, x] == round((ch + 1) * 255 / c)
                seen[ch] = seen.get(ch, 0) + 1
    assert seen == {ch: h * w for ch in range(c)}
    if towers == 2:  # the second tower's first channel starts right of the first block and its gap
        assert N.channel_at(layout, 3 * (w + 1) + layout["gap"], 0) == per
        assert N.channel_at(layout, 3 * (w + 1), 0) is None  # in the gap


@pytest.mark.parametrize("model", ["alexnet", "alexnet_caffe"])
def test_lrn_explained_is_the_paper_formula_and_the_network(model):
    norm = meta(model).features.norm1
    torch.manual_seed(1)
    before = torch.relu(torch.randn(96, 5, 5)) * 30
    after = norm(before[None])[0]
    e = N.lrn_explained(norm, before, after, 3)
    a = before.double()
    y, x = e["y"], e["x"]
    assert a[3, y, x] == a[3].max()
    alpha = 1e-4 if model == "alexnet" else 1e-4 / 5
    k = 2.0 if model == "alexnet" else 1.0
    want = a[3, y, x] / (k + alpha * (a[1:6, y, x] ** 2).sum()) ** 0.75  # channels 1..5 around 3, by hand
    assert e["window"] == [1, 2, 3, 4, 5]
    assert e["b_formula"] == pytest.approx(float(want), rel=1e-12)
    assert e["b_network"] == pytest.approx(float(want), rel=1e-5)
    ref = lrn_reference(a[None], 5, 1e-4, 0.75, k, "paper" if model == "alexnet" else "caffe")[0]
    assert e["max_after"] == pytest.approx(float(ref[3].max()), rel=1e-5)


def test_occlusion_positions_progress_and_cancel():
    assert N.positions(227, 48, 16) == list(range(0, 180, 16)) + [179]
    assert N.positions(32, 32, 8) == [0]
    torch.manual_seed(0)
    net = create_model("cifar_convnet").eval()
    card = Card(model="cifar_convnet", num_classes=10, input_size=32, resize=None, mean=[0.5, 0.4, 0.3])
    pipe = card.pipeline()
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    fill = N.fill_colour(card.mean, 3)
    assert fill.tolist() == [128, 102, 76]
    lock, never = threading.Lock(), threading.Event()
    steps = list(N.occlusion(net, pipe, img, 4, 8, 4, fill, never, lock, batch=10))
    assert [s[:2] for s in steps] == [(10, 49), (20, 49), (30, 49), (40, 49), (49, 49)]
    heat = steps[-1][2]
    # position (2, 5): the square's corner at (8, 20), by hand
    hand = img.clone()
    hand[:, 8:16, 20:28] = fill[:, None, None]
    with torch.no_grad():
        want = torch.softmax(net(pipe.eval(hand[None])), 1)[0, 4]
    assert heat[2, 5] == pytest.approx(float(want), rel=1e-5)
    # the whole crop covered: the probability of the mean-coloured image
    ((_, _, whole),) = N.occlusion(net, pipe, img, 4, 32, 32, fill, never, lock)
    flat = fill[:, None, None].expand(3, 32, 32)
    with torch.no_grad():
        assert whole[0, 0] == pytest.approx(
            float(torch.softmax(net(pipe.eval(flat[None])), 1)[0, 4]), rel=1e-5
        )
    cancel = threading.Event()
    gen = N.occlusion(net, pipe, img, 4, 8, 4, fill, cancel, lock, batch=10)
    next(gen)
    cancel.set()
    assert list(gen) == []  # nothing more is computed once cancelled


# ---- the page's numbers are the CLI's --------------------------------------------------
def test_top5_equals_alexnet_predict(client, ex, files):
    weights, folder = files
    cli = predict_cli(folder / "sub/img1.jpg", weights)
    r = client.post("/api/analyze", params={"path": "sub/img1.jpg"})
    assert r.status_code == 200, r.text
    assert [(t["name"], f"{t['p']:.2%}") for t in r.json()["top5"]] == cli
    assert len({n for n, _ in cli}) == 5
    # the file uploaded (as a fresh server sees it): the same answer
    fresh = TestClient(create_app(Explorer(ex.model, ex.card, "w"), hosts=["testserver"]))
    up = fresh.post("/api/upload", params={"name": "x.jpg"}, content=(folder / "sub/img1.jpg").read_bytes())
    assert [(t["name"], f"{t['p']:.2%}") for t in up.json()["top5"]] == cli


def test_the_page_shows_every_stage_with_the_towers_apart(client, ex):
    r = client.post("/api/analyze", params={"path": "img2.jpg"}).json()
    assert [s["name"] for s in r["stages"]] == [s.name for s in ex.plan]
    conv1 = r["stages"][0]
    assert conv1["shape"] == [96, 55, 55] and conv1["layout"]["towers"] == 2 and conv1["layout"]["per"] == 48
    assert r["input"].startswith("data:image/png;base64,")
    info = client.get("/api/info").json()
    assert info["towers"] == 2 and info["filters"].startswith("data:image/png")


def test_channel_patches_are_the_folder_images_that_drive_it_most(client, ex, files):
    _, folder = files
    view = client.post("/api/analyze", params={"path": "img0.png"}).json()
    r = client.get("/api/channel", params={"id": view["id"], "stage": "conv5", "c": 7}).json()
    assert r["indexed"] == r["images"] == 6 and len(r["patches"]) == 6
    # each image's strongest conv5 unit in channel 7, computed here image by image
    best = {}
    for name in ex.folder.names:
        x = ex.pipeline.eval(ex.card.decode((folder / name).read_bytes(), name)[None])
        outs, _ = N.walk(ex.model, ex.plan, x)
        best[name] = float(outs[ex.stage("conv5")][0, 7].max())
    order = sorted(best, key=lambda n: -best[n])
    assert [p["name"] for p in r["patches"]] == order
    assert [p["value"] for p in r["patches"]] == pytest.approx([best[n] for n in order], rel=1e-5)
    assert r["field"] == 163 and r["max"] == pytest.approx(float(ex.view(view["id"]).outs[8][7].max()))
    assert (
        client.get("/api/channel", params={"id": view["id"], "stage": "conv5", "c": 256}).status_code == 400
    )


def test_lrn_panel_numbers(client, ex):
    view = client.post("/api/analyze", params={"path": "img0.png"}).json()
    r = client.get("/api/lrn", params={"id": view["id"]}).json()
    v = ex.view(view["id"])
    assert r["stage"] == "norm1" and r["before_stage"] == "conv1" and r["stages"] == ["norm1", "norm2"]
    assert r["channel"] == int(v.outs[0].flatten(1).max(1).values.argmax())  # the most active channel
    assert r["b_formula"] == pytest.approx(r["b_network"], rel=1e-5)
    assert r["b_network"] == pytest.approx(float(v.outs[1][r["channel"], r["y"], r["x"]]))
    r2 = client.get("/api/lrn", params={"id": view["id"], "stage": "norm2", "c": 100}).json()
    assert r2["channel"] == 100 and r2["before_stage"] == "conv2" and r2["window"] == [98, 99, 100, 101, 102]


def _events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_occlusion_streams_progress_then_the_map(client):
    view = client.post("/api/analyze", params={"path": "img0.png"}).json()
    r = client.get("/api/occlusion", params={"id": view["id"], "size": 120, "stride": 107})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    assert [e for e, _ in events] == ["progress", "done"] and events[0][1]["total"] == 4
    done = events[-1][1]
    assert done["target"] == view["top5"][0]["name"] and done["p"] == pytest.approx(view["top5"][0]["p"])
    assert done["png"].startswith("data:image/png")
    bad = client.get("/api/occlusion", params={"id": view["id"], "size": 500})
    assert bad.status_code == 400 and "1..227" in bad.json()["error"]


def test_a_cancelled_occlusion_stops(ex, files):
    with running(ex) as url:
        view = post(f"{url}/api/analyze?path=img0.png")

        stream = urllib.request.urlopen(
            f"{url}/api/occlusion?id={view['id']}&size=20&stride=4&job=j1", timeout=60
        )
        first = stream.readline()
        assert first.startswith(b"event: progress")
        assert post(f"{url}/api/cancel?job=j1") == {"cancelled": True}
        rest = stream.read().decode()
        events = [line for line in rest.splitlines() if line.startswith("event:")]
        assert events[-1] == "event: cancelled" and len(events) < 40  # 2,704 positions, 16 a batch


# ---- safety -----------------------------------------------------------------------------
def _png_claiming(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "body,status,words",
    [
        (b"not an image at all", 400, "not a readable image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 50, 400, "not a readable image"),
        (_png_claiming(100_000, 100_000), 400, "decompression bomb"),
        (b"", 400, "not a readable image"),
    ],
)
def test_a_hostile_upload_is_a_message_and_the_server_goes_on(client, body, status, words):
    r = client.post("/api/upload", params={"name": "evil.png"}, content=body)
    assert r.status_code == status and words in r.json()["error"] and "evil.png" in r.json()["error"]
    assert client.post("/api/analyze", params={"path": "img0.png"}).status_code == 200


def test_uploads_are_size_limited(ex, files):
    _, folder = files
    small = TestClient(create_app(ex, hosts=["testserver"], max_upload=1000), raise_server_exceptions=False)
    r = small.post("/api/upload", params={"name": "big.jpg"}, content=(folder / "sub/img1.jpg").read_bytes())
    assert r.status_code == 413 and "big.jpg" in r.json()["error"]

    def chunks():  # no Content-Length: refused as the bytes arrive
        for _ in range(10):
            yield b"\0" * 500

    r = small.post("/api/upload", content=chunks())
    assert r.status_code == 413


def test_only_the_folder_images_are_served(client, files, tmp_path):
    _, folder = files
    secret = folder.parent / "secret.png"
    secret.write_bytes((folder / "img0.png").read_bytes())
    link = folder / "link.png"
    link.symlink_to(secret)  # a link leaving FOLDER, made after the listing: never served either
    try:
        for name in (
            "../secret.png",
            str(secret),
            "sub/../../secret.png",
            "link.png",
            "%2e%2e/secret.png",
            "sub",
            "",
            "img0.png/",
        ):
            for r in (
                client.post("/api/analyze", params={"path": name}),
                client.get("/api/thumb", params={"path": name}),
            ):
                assert r.status_code == 404 and "not an image of the folder" in r.json()["error"], name
    finally:
        link.unlink()
    assert client.get("/../secret.png").status_code == 404
    assert client.get("/api/images").json()["names"] == [
        "img0.png",
        "img2.jpg",
        "img4.jpg",
        "sub/img1.jpg",
        "sub/img3.png",
        "sub/img5.jpg",
    ]


def test_a_symlink_leaving_the_folder_is_not_listed(files, tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "outside.jpg").write_bytes(b"x")
    (tmp_path / "f" / "in.jpg").write_bytes(b"x")
    (tmp_path / "f" / "out.jpg").symlink_to(tmp_path / "outside.jpg")
    f = Folder(tmp_path / "f")
    assert f.names == ["in.jpg"] and f.skipped == {"outside": 1}
    with pytest.raises(LookupError):
        f.read("out.jpg")


def test_a_foreign_host_is_refused(client):
    assert client.get("/api/info", headers={"host": "evil.example"}).status_code == 400
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]


def test_the_page_fetches_nothing_from_elsewhere():
    for name in ("page.html", "page.js", "page.css"):
        text = resources.files("alexnet.explore").joinpath(name).read_text()
        assert (
            "http:" not in text and "https:" not in text and "//cdn" not in text and "@import" not in text
        ), name


def test_two_tabs_at_once_get_their_own_answers(ex, files):
    _, folder = files
    names = ["img0.png", "sub/img1.jpg", "img2.jpg", "sub/img3.png"]
    alone = {}
    for n in names:  # one at a time, from a fresh server
        v = ex.open((folder / n).read_bytes(), n)
        alone[n] = (ex.analyze(v)["top5"], [s["png"] for s in ex.analyze(v)["stages"]])
    ex._views.clear()
    errors = []
    with running(ex) as url:

        def tab(order):
            try:
                for n in order * 2:
                    r = (
                        post(f"{url}/api/upload?name=x", (folder / n).read_bytes())
                        if n.endswith("png")
                        else post(f"{url}/api/analyze?path={n}")
                    )
                    assert (r["top5"], [s["png"] for s in r["stages"]]) == alone[n], n
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        tabs = [
            threading.Thread(target=tab, args=(names,)),
            threading.Thread(target=tab, args=(names[::-1],)),
        ]
        for t in tabs:
            t.start()
        for t in tabs:
            t.join()
    assert not errors, errors


@pytest.mark.parametrize("name", list_models())
def test_every_network_of_the_zoo_opens(name, files):
    _, folder = files
    torch.manual_seed(0)
    model = create_model(name, num_classes=4)
    card = Card(
        model=name,
        num_classes=4,
        input_size=model.input_size,
        in_channels=model.in_channels,
        resize=None if model.input_size < 64 else 256,
        mean=[0.5] * model.in_channels,
        lrn=None,
        classes=["a", "b", "c", "d"],
    )
    ex = Explorer(model, card, "in-memory", str(folder))
    view = ex.open((folder / "img0.png").read_bytes(), "img0.png")
    page = ex.analyze(view)
    x = ex.pipeline.eval(card.decode((folder / "img0.png").read_bytes(), "x")[None])
    with torch.no_grad():  # the stages walked are the network, exactly
        assert torch.equal(torch.stack(view.outs[-1:]), model.forward_features(x))
        probs = torch.softmax(model(x), 1)[0]
    assert torch.equal(view.probs, probs)
    assert [t["name"] for t in page["top5"]] == [card.classes[i] for i in probs.topk(4).indices]
    assert len(page["stages"]) == len(ex.plan) >= 4
    assert ex.channel(view.id, page["stages"][-1]["name"], 0)["shape"] == page["stages"][-1]["shape"][1:]
    lrn = ex.lrn(view.id)
    assert ("note" in lrn) == (not any(s.kind == "norm" for s in ex.plan))
    *_, done = ex.occlusion(view.id, model.input_size // 2, model.input_size // 2, threading.Event())
    assert done["event"] == "done"


def test_neighbours_by_fc7_from_a_features_file(files, tmp_path):
    weights, folder = files
    flat = tmp_path / "flat"  # the index's data: the same images, in a folder of its own
    flat.mkdir()
    for n in ("img0.png", "sub/img1.jpg", "img2.jpg", "sub/img3.png", "img4.jpg", "sub/img5.jpg"):
        (flat / Path(n).name).write_bytes((folder / n).read_bytes())
    index = extract(str(weights), str(flat), "fc7", tmp_path / "f.npz", split=None, workers=0, progress=False)
    ex = Explorer.load(str(weights), str(folder), str(index))
    client = TestClient(create_app(ex, hosts=["testserver"]))
    assert client.get("/api/info").json()["features"]["layer"] == "fc7"
    view = client.post("/api/analyze", params={"path": "img2.jpg"}).json()
    r = client.get("/api/neighbours", params={"id": view["id"]}).json()
    assert len(r["items"]) == 6 and r["note"] == ""
    assert r["items"][0]["distance"] == pytest.approx(0, abs=1e-3) and r["items"][0]["path"].endswith(
        "img2.jpg"
    )
    assert [i["distance"] for i in r["items"]] == sorted(i["distance"] for i in r["items"])


def test_a_features_file_of_another_network_is_refused(files, tmp_path):
    weights, folder = files
    np.savez(
        tmp_path / "f.npz",
        features=np.ones((2, 10), np.float32),
        paths=np.array(["a", "b"]),
        labels=np.zeros(2, np.int64),
        indices=np.arange(2),
        layer=np.array("fc7"),
        weights=np.array("w"),
        data=np.array("d"),
        split=np.array(""),
        classes=np.array(["x"]),
    )
    with pytest.raises(BadInput, match="--features .*10-d fc7 features, but --weights .* gives 4096-d"):
        Explorer.load(str(weights), None, str(tmp_path / "f.npz"))


def test_the_command_without_the_extra_says_what_to_install(monkeypatch, capsys, files):
    for name in [m for m in sys.modules if m.split(".")[0] in ("starlette", "uvicorn")] + ["starlette"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if never installed
    monkeypatch.delitem(sys.modules, "alexnet.explore.app", raising=False)
    assert main(["explore", "--weights", str(files[0]), "--port", "0"]) == 1
    assert "pip install 'alexnet[explore]'" in capsys.readouterr().err


def test_a_port_in_use_is_one_line(capsys, files):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["explore", "--weights", str(files[0]), "--port", str(s.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen there" in err and len(err.strip().splitlines()) == 1
