"""The folder index (issue 13 §3): numpy arrays, not objects per file; the cache keyed on folder
mtimes and safe to load; odd entries (FIFOs, devices, symlink loops, symlinks leaving the data
root) skipped and counted, never hanging (issue 11 §4)."""

import io
import json
import os
import time
import warnings
import zipfile

import numpy as np
import pytest

from alexnet.cli import main
from alexnet.data import Decoding, index, make_loader, open_dataset, open_source
from alexnet.data.decode import BadImage
from alexnet.data.index import Names, load_cache, pack
from alexnet.data.sources import read_regular
from alexnet.errors import BadInput
from conftest import write_image


def empty_tree(root, classes=3, per=4, ext=".jpg"):
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per):
            (root / f"c{c}" / f"{i:03d}{ext}").touch()
    return root


def age(root, seconds=100):
    """Set every folder's mtime into the past, out of the cache's racy window."""
    t = time.time() - seconds
    for d, _, _ in os.walk(root):
        os.utime(d, (t, t))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(index, "CACHE_MIN_FILES", 1)
    return tmp_path / "cache" / "index"


def test_names_and_labels_are_arrays(tmp_path):
    root = empty_tree(tmp_path / "d")
    (root / "c1" / "deep" / "er").mkdir(parents=True)
    (root / "c1" / "deep" / "er" / "x.JPEG").touch()
    (root / "c2" / "._0.jpg").touch()  # macOS metadata: hidden, not an image
    (root / "c2" / "notes.txt").touch()
    bad = os.fsdecode(b"caf\xe9.jpg")  # a Latin-1 name on a UTF-8 system
    (root / "c0" / bad).touch()
    src = open_source(str(root), None)
    assert isinstance(src.names, Names) and src.labels.dtype == np.int64
    assert isinstance(src.names.buf, np.ndarray) and isinstance(src.names.offsets, np.ndarray)
    assert len(src) == 14 and src.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 4
    assert src.names[0] == str(root / "c0" / "000.jpg") and src.names[-1] == str(root / "c2" / "003.jpg")
    assert src.names[4] == str(root / "c0" / bad) and src.read(4) == b""  # undecodable bytes survive
    assert src.names[9] == str(root / "c1" / "deep" / "er" / "x.JPEG")
    assert src.names[1:3] == [str(root / "c0" / "001.jpg"), str(root / "c0" / "002.jpg")]
    with pytest.raises(IndexError):
        src.names[14]
    buf, off = pack(["a", "bc", ""])
    assert (
        buf.tobytes() == b"a\0bc\0\0"
        and off.tolist() == [0, 2, 5, 6]
        and list(Names(buf, off)) == ["a", "bc", ""]
    )


def test_forked_workers_share_the_index():
    """Touching every entry in a forked child (as a loader worker does) copies no per-file
    objects: the index is two arrays (a list of 200,000 Paths would copy about 40 MB)."""
    if not os.path.exists("/proc/self/smaps_rollup"):
        pytest.skip("needs Linux /proc")
    paths = [f"n{c:08d}/n{c:08d}_{i}.JPEG" for c in range(200) for i in range(1000)]
    names, labels = Names(*pack(paths), prefix="/data/train/"), np.repeat(np.arange(200), 1000)
    del paths

    def dirty():
        with open("/proc/self/smaps_rollup") as f:
            return sum(int(x.split()[1]) for x in f if x.startswith("Private_Dirty")) * 1024

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        before = dirty()
        total = sum(len(names.raw(i)) for i in range(len(names))) + int(labels.sum())
        os.write(w, json.dumps([dirty() - before, total]).encode())
        os._exit(0)
    os.close(w)
    copied, total = json.loads(os.read(r, 100))
    os.waitpid(pid, 0)
    assert total == len(names.buf) - len(names) + 1000 * sum(range(200))
    assert copied < 2 << 20, f"{copied / 2**20:.2f} MB copied for 200,000 entries"


def test_cache_is_used_until_a_folder_changes(tmp_path, cache, monkeypatch):
    root = empty_tree(tmp_path / "d")
    fresh = open_source(str(root), None)
    assert not cache.exists() or not list(cache.iterdir())  # just written folders: racy, not cached
    age(root)
    open_source(str(root), None)
    assert len(list(cache.glob("*.npz"))) == 1
    real_scan = index.scan
    monkeypatch.setattr(index, "scan", lambda *a, **k: pytest.fail("scanned despite a valid cache"))
    hit = open_source(str(root), None)
    assert list(hit.names) == list(fresh.names) and hit.labels.tolist() == fresh.labels.tolist()
    monkeypatch.setattr(index, "scan", real_scan)
    (root / "c1" / "new.jpg").touch()  # changes c1's mtime
    age(root / "c1", 50)
    again = open_source(str(root), None)
    assert len(again) == len(fresh) + 1 and str(root / "c1" / "new.jpg") in list(again.names)
    (root / "c9").mkdir()  # a new class folder changes the root's mtime
    write_image(root / "c9" / "x.jpg")
    age(root, 30)
    assert open_source(str(root), None).classes == ["c0", "c1", "c2", "c9"]


def _damage(path, **replace):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(replace)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_a_damaged_or_hostile_cache_is_never_trusted(tmp_path, cache):
    root = empty_tree(tmp_path / "d")
    age(root)
    good = open_source(str(root), None)
    path = next(cache.glob("*.npz"))
    original = path.read_bytes()
    base = str(root)
    assert load_cache(path, base) is not None

    def meta(**kw):
        with np.load(io.BytesIO(original)) as z:
            m = json.loads(z["meta"].tobytes())
        m.update(kw)
        return np.frombuffer(json.dumps(m).encode(), np.uint8)

    with np.load(io.BytesIO(original)) as z:
        buf, offsets = z["buf"], z["offsets"]
    evil_buf = buf.copy()
    evil_buf[:6] = np.frombuffer(b"../../", np.uint8)  # c0/000.jpg -> ../../0.jpg
    cases = [
        dict(offsets=offsets + 1),  # past the buffer
        dict(labels=np.full(12, 7, np.int64)),  # a class that does not exist
        dict(labels=np.zeros(12, np.int32)),  # wrong dtype
        dict(buf=evil_buf),  # a path leaving the folder
        dict(meta=meta(dirs=["c0"], mtimes=[0])),  # a key that checks nothing
        dict(meta=meta(version=99)),
        dict(meta=meta(base="/elsewhere")),
        dict(offsets=np.array([[0, 1]], np.int64)),  # not 1-D
        dict(labels=np.array([object()] * 12, dtype=object)),  # a pickle
    ]
    for replace in cases:
        path.write_bytes(original)
        _damage(path, **replace)
        assert load_cache(path, base) is None, replace.keys()
    # a header that claims far more data than the file holds: refused before allocating
    with zipfile.ZipFile(path, "w") as zf:
        for name in ("meta", "buf", "offsets", "labels"):
            hdr = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                hdr,
                {
                    "descr": "<i8" if name in ("offsets", "labels") else "|u1",
                    "fortran_order": False,
                    "shape": (10**12,),
                },
            )
            zf.writestr(name + ".npy", hdr.getvalue() + b"\0" * 16)
    assert load_cache(path, base) is None
    path.write_bytes(b"not a zip at all")
    assert load_cache(path, base) is None
    again = open_source(str(root), None)  # and the folder still opens: scanned again
    assert list(again.names) == list(good.names)
    assert load_cache(path, base) is not None  # with a good cache written in its place


def test_fifos_devices_and_loops_are_skipped_and_counted(tmp_path):
    root = empty_tree(tmp_path / "d", classes=2, per=2)
    os.mkfifo(root / "c0" / "pipe.jpg")
    os.symlink("loop2.jpg", root / "c0" / "loop1.jpg")
    os.symlink("loop1.jpg", root / "c0" / "loop2.jpg")
    os.symlink("nowhere.jpg", root / "c1" / "dangling.jpg")
    os.symlink(".", root / "c1" / "up")  # a folder loop: c1/up/up/up/...
    os.symlink("../c0/000.jpg", root / "c1" / "inside.jpg")  # stays in the data root: followed
    with pytest.warns(UserWarning) as caught:
        src = open_source(str(root), None)
    msg = " ".join(str(w.message) for w in caught)
    assert (
        "1 FIFOs, devices or sockets skipped" in msg and "4 broken symlinks or symlink loops skipped" in msg
    )
    names = [os.path.relpath(n, root) for n in src.names]
    assert sorted(names) == ["c0/000.jpg", "c0/001.jpg", "c1/000.jpg", "c1/001.jpg", "c1/inside.jpg"]
    assert not any("pipe" in n or "loop" in n or "dangling" in n for n in names)
    with pytest.raises(BadImage, match="not a regular file"):
        read_regular(str(root / "c0" / "pipe.jpg"), "pipe.jpg")  # O_NONBLOCK: returns at once
    os.symlink("/dev/zero", root / "c0" / "zero.jpg")
    with pytest.warns(UserWarning, match="2 FIFOs, devices or sockets skipped"):  # never read
        assert len(open_source(str(root), None, follow_symlinks=True)) == len(src)


def test_symlinks_leaving_the_data_root(tmp_path, monkeypatch, capsys):
    outside = write_image(tmp_path / "elsewhere" / "y.jpg")
    root = empty_tree(tmp_path / "d", classes=2, per=0)
    write_image(root / "c0" / "a.jpg")
    write_image(root / "c1" / "b.jpg")
    os.symlink(outside, root / "c1" / "out.jpg")
    os.symlink(tmp_path / "elsewhere", root / "c2")  # a class folder that lives elsewhere
    with pytest.warns(UserWarning, match=r"2 symlinks leaving the data root skipped.*--follow-symlinks"):
        src = open_source(str(root), None)
    assert src.classes == ["c0", "c1"] and len(src) == 2
    followed = open_source(str(root), None, follow_symlinks=True)
    assert followed.classes == ["c0", "c1", "c2"] and len(followed) == 4
    monkeypatch.setenv("ALEXNET_FOLLOW_SYMLINKS", "1")
    assert len(open_source(str(root), None)) == 4
    monkeypatch.delenv("ALEXNET_FOLLOW_SYMLINKS")
    out = tmp_path / "s.pt"
    argv = ["stats", "--data", str(root), "--out", str(out), "--resize", "16", "--workers", "0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0 and "2 images" in capsys.readouterr().out
        assert main(["--follow-symlinks", *argv]) == 0 and "4 images" in capsys.readouterr().out
    assert "ALEXNET_FOLLOW_SYMLINKS" not in os.environ
    # a split folder that is itself a link out of the data root: refused with the way out
    split_root = tmp_path / "s"
    split_root.mkdir()
    os.symlink(root, split_root / "train")
    with pytest.raises(BadInput, match="symlink leaving .*--follow-symlinks"):
        open_source(str(split_root), "train")
    assert len(open_source(str(split_root), "train", follow_symlinks=True)) == 4


def test_loader_never_hangs_on_a_fifo_put_in_after_the_scan(tmp_path):
    root = tmp_path / "d"
    for i in range(3):
        write_image(root / "c" / f"{i}.png", (20, 20), seed=i)
    ds = open_dataset(str(root), None, Decoding(16, 16))
    (root / "c" / "1.png").unlink()
    os.mkfifo(root / "c" / "1.png")
    with pytest.warns(UserWarning, match="1.png: not a regular file"):
        batches = list(make_loader(ds, 3, shuffle=False, workers=0))
    assert [len(b.images) for b in batches] == [2] and batches[0].skipped[0].endswith("1.png")
