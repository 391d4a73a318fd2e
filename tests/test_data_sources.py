"""Sources: folders, tars, shards, CIFAR-10 python, Fashion-MNIST IDX, named datasets, real data."""

import collections
import gzip
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest

from alexnet.data import formats, open_source
from conftest import write_image


def test_real_cifar10_tar(data_root):
    tar = data_root / "cifar10-jpeg.tar"
    if not tar.exists():
        pytest.skip(f"{tar} is absent")
    train, test = open_source(str(tar), "train"), open_source(str(tar), "test")
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.classes == [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    assert set(collections.Counter(train.labels).values()) == {5_000}
    assert train.split == "train" and test.split == "test"
    assert list(open_source(str(tar), "val").names) == list(
        test.names
    )  # val and test stand in for each other


def test_real_imagenet_sample(data_root):
    folder = data_root / "imagenet-sample"
    if not folder.exists():
        pytest.skip(f"{folder} is absent")
    src = open_source(str(folder), "train")
    assert len(src) == 1_000 and len(src.classes) == 200
    assert all(c.startswith("n") and len(c) == 9 for c in src.classes)
    assert set(collections.Counter(src.labels).values()) == {5}


def test_image_folder_splits_and_labels(image_folder):
    train, val = open_source(str(image_folder), "train"), open_source(str(image_folder), "val")
    assert train.classes == ["ant", "bee", "cat"] == val.classes  # sorted by name
    assert len(train) == 12 and len(val) == 6
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert train.names[0].endswith("train/ant/0.jpg")
    with pytest.raises(ValueError, match="no 'test2' split"):
        open_source(str(image_folder), "test2")


def test_flat_folder_with_labels_file(tmp_path):
    for i in range(3):
        write_image(tmp_path / "val" / f"ILSVRC2012_val_{i:08d}.JPEG", seed=i)
    (tmp_path / "val.txt").write_text(
        "ILSVRC2012_val_00000000.JPEG 65\nILSVRC2012_val_00000001.JPEG 0\nILSVRC2012_val_00000002.JPEG 999\n"
    )
    src = open_source(str(tmp_path / "val"), None, labels_file=str(tmp_path / "val.txt"))
    assert src.labels.tolist() == [65, 0, 999]
    (tmp_path / "bad.txt").write_text("ILSVRC2012_val_00000000.JPEG sixty\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: expected"):
        open_source(str(tmp_path / "val"), None, labels_file=str(tmp_path / "bad.txt"))
    unlabeled = open_source(str(tmp_path / "val"), None)
    assert unlabeled.labels.tolist() == [-1, -1, -1]


def test_empty_and_imageless_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        open_source(str(tmp_path / "empty"))
    (tmp_path / "docs" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "a" / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match="no images found"):
        open_source(str(tmp_path / "docs"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_source(str(tmp_path / "nope"))


def _tar(path, members):
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_tar_with_top_folder_and_splits(tmp_path):
    jpg = write_image(tmp_path / "x.jpg").read_bytes()
    tar = _tar(
        tmp_path / "d.tar",
        [(f"top/{s}/{c}/{i}.jpg", jpg) for s in ("train", "test") for c in ("b", "a") for i in range(2)],
    )
    src = open_source(str(tar), "train")
    assert len(src) == 4 and src.classes == ["a", "b"] and src.labels.tolist() == [1, 1, 0, 0]
    assert src.read(0) == jpg  # read in place by offset
    assert len(open_source(str(tar), "val")) == 4


def test_webdataset_shards_with_braces(tmp_path):
    jpg = write_image(tmp_path / "x.jpg").read_bytes()
    for s in range(3):
        _tar(
            tmp_path / f"train-{s:03d}.tar",
            [(f"k{s}{i}.jpg", jpg) for i in range(2)] + [(f"k{s}{i}.cls", str(s).encode()) for i in range(2)],
        )
    src = open_source(str(tmp_path / "train-{000..002}.tar"), "train")
    assert len(src) == 6 and src.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert [list(g) for g in src.groups] == [[0, 1], [2, 3], [4, 5]]
    assert len(open_source(str(tmp_path / "train-*.tar"), "train")) == 6


@pytest.mark.parametrize("bad", ["../evil/a.jpg", "/etc/a.jpg", "ok/../../a.jpg"])
def test_tar_members_escaping_are_rejected(tmp_path, bad):
    tar = _tar(tmp_path / "bad.tar", [("c/a.jpg", b"x"), (bad, b"x")])
    with pytest.raises(ValueError, match="absolute path or '..'"):
        open_source(str(tar))


def _cifar_pickle(d):
    """Pickle as the official files are: protocol 2, numpy arrays under numpy.core.multiarray."""
    data = pickle.dumps(d, protocol=2)
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_cifar(path, n=4, as_folder=False):
    rng = np.random.default_rng(0)
    members = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        members[name] = _cifar_pickle(
            {
                b"batch_label": name.encode(),
                b"labels": rng.integers(0, 10, n).tolist(),
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
            }
        )
    members["batches.meta"] = _cifar_pickle(
        {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": n, b"num_vis": 3072}
    )
    if as_folder:
        for name, data in members.items():
            (path / "cifar-10-batches-py").mkdir(parents=True, exist_ok=True)
            (path / "cifar-10-batches-py" / name).write_bytes(data)
        return path, members
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path, members


@pytest.mark.parametrize("as_folder", [False, True])
def test_cifar10_python_format(tmp_path, as_folder):
    path, members = write_cifar(
        tmp_path / ("c" if as_folder else "cifar-10-python.tar.gz"), as_folder=as_folder
    )
    train, test = open_source(str(path), "train"), open_source(str(path), "test")
    assert (len(train), len(test)) == (20, 4)
    assert train.classes == [f"c{i}" for i in range(10)]
    first = pickle.loads(members["data_batch_1"], encoding="bytes")
    assert np.array_equal(train.read(0), first[b"data"][0].reshape(3, 32, 32))  # CHW, R plane first
    assert train.labels[:4].tolist() == first[b"labels"]


def test_malicious_cifar_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    folder = tmp_path / "c"
    write_cifar(folder, as_folder=True)
    (folder / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_3 .*refusing to load (posix|os)\.system"):
        open_source(str(folder), "train")


def write_idx(path, arr):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_idx(tmp_path):
    rng = np.random.default_rng(1)
    imgs, labels = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs[:2])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:2])
    src = open_source(str(tmp_path), "train")
    assert len(src) == 5 and src.channels == 1 and src.labels.tolist() == labels.tolist()
    assert np.array_equal(src.read(3)[0], imgs[3])
    assert len(open_source(str(tmp_path), "test")) == 2
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:  # truncated body
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 5, 28, 28) + b"\0" * 100)
    with pytest.raises(ValueError, match="truncated"):
        open_source(str(tmp_path), "train")


def test_named_dataset_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_DATA", str(tmp_path))

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr("alexnet.download.urllib.request.urlopen", offline)
    with pytest.raises(FileNotFoundError, match=r"put cifar-10-python.tar.gz .* at .*cifar10"):
        open_source("cifar10")
    with pytest.raises(FileNotFoundError, match=r"put train-images-idx3-ubyte.gz"):
        open_source("fashion-mnist")
    (tmp_path / "cifar10").mkdir(exist_ok=True)
    (tmp_path / "cifar10" / "cifar-10-python.tar.gz").write_bytes(b"not it")
    with pytest.raises(ValueError, match="checksum mismatch"):
        open_source("cifar10")


def test_named_dataset_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_DATA", str(tmp_path))
    (tmp_path / "cifar10").mkdir()
    path, _ = write_cifar(tmp_path / "cifar10" / "cifar-10-python.tar.gz")
    monkeypatch.setattr(formats, "CIFAR10_MD5", formats.md5(path))  # our small stand-in file
    assert len(open_source("cifar10", "train")) == 20
