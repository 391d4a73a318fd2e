"""Classes are matched by name everywhere (issue 11 §3): one reference list, every split and
command mapped onto it, a foreign class named in the error, every label bounds-checked."""

import csv
import io
import tarfile

import numpy as np
import pytest

import alexnet
from alexnet.card import Card
from alexnet.cli import main
from alexnet.data import open_source
from alexnet.errors import BadInput
from alexnet.interop.pretrained import save_pretrained
from alexnet.training.config import TrainConfig
from alexnet.training.setup import datasets
from conftest import write_image

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def folder(root, layout, size=(36, 36)):
    """layout: {"train/cat": 2, ...} -> that many images per class folder."""
    for rel, n in layout.items():
        (root / rel).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_image(root / rel / f"{i}.png", size, seed=hash((rel, i)) % 1000)
    return root


def test_empty_train_folder_is_reported_and_shifts_nothing(tmp_path):
    root = folder(tmp_path / "d", {"train/bee": 2, "train/cat": 2, "val/bee": 1, "val/cat": 1})
    (root / "train" / "aaa").mkdir()  # sorts first: it used to become class 0
    with pytest.warns(UserWarning, match=r"1 class folder\(s\) without images left out.*'aaa'"):
        train = open_source(str(root), "train")
    assert train.classes == ["bee", "cat"] and train.labels.tolist() == [0, 0, 1, 1]
    assert open_source(str(root), "val").labels.tolist() == [0, 1]


def test_val_split_with_a_subset_of_the_classes(tmp_path):
    root = folder(tmp_path / "d", {"train/ant": 1, "train/bee": 1, "train/cat": 1, "val/cat": 2})
    val = open_source(str(root), "val")  # the training split's list, by default
    assert val.classes == ["ant", "bee", "cat"] and val.labels.tolist() == [2, 2]
    # the same through a tar with a wrapping folder (cifar10/train/..., cifar10/test/...)
    jpg = write_image(tmp_path / "x.jpg").read_bytes()
    tar = tmp_path / "d.tar"
    with tarfile.open(tar, "w") as tf:
        for name in ["top/train/a/0.jpg", "top/train/b/0.jpg", "top/train/c/0.jpg", "top/test/c/0.jpg"]:
            info = tarfile.TarInfo(name)
            info.size = len(jpg)
            tf.addfile(info, io.BytesIO(jpg))
    test = open_source(str(tar), "test")
    assert test.classes == ["a", "b", "c"] and test.labels.tolist() == [2]


def test_a_class_missing_from_the_list_is_named(tmp_path):
    root = folder(tmp_path / "d", {"train/ant": 1, "train/bee": 1, "val/bee": 1, "val/zebra": 1})
    with pytest.raises(
        BadInput, match=r"val split.*class\(es\) 'zebra' not among the 2 classes of the training split"
    ):
        open_source(str(root), "val")
    src = open_source(str(root), "val", classes=["zebra", "x", "bee"], classes_from="the network")
    assert src.classes == ["zebra", "x", "bee"] and src.labels.tolist() == [2, 0]


def test_training_maps_val_by_the_training_list(tmp_path):
    root = folder(
        tmp_path / "d", {"train/ant": 1, "train/bee": 1, "train/cat": 1, "val/cat": 1, "val/ant": 1}
    )
    other = folder(tmp_path / "v", {"cat": 1, "bee": 1})  # --val-data: another folder, fewer classes
    train, val = datasets(TrainConfig(data=str(root), resize=36))
    assert val.classes == train.classes == ["ant", "bee", "cat"] and val.source.labels.tolist() == [0, 2]
    _, val = datasets(TrainConfig(data=str(root), val_data=str(other), resize=36))
    assert val.source.labels.tolist() == [1, 2]
    _, val = datasets(TrainConfig(data=str(root), resize=36), classes=["cat", "bee", "ant", "dog"])
    assert val.source.labels.tolist() == [2, 0]  # a resumed run's list wins
    flat = tmp_path / "flat"
    write_image(flat / "a.jpg")
    with pytest.raises(BadInput, match="have no class"):
        datasets(TrainConfig(data=str(flat), val_data=str(other), resize=36))


def _cifar_net(tmp_path, classes=CIFAR):
    model = alexnet.create_model("cifar_convnet", num_classes=10, seed=0)
    card = Card(
        model="cifar_convnet",
        num_classes=10,
        input_size=32,
        resize=32,
        mean=[0.5, 0.5, 0.5],
        pixel_scale=1.0,
        lrn=None,
        classes=list(classes),
    )
    return save_pretrained(model, card, tmp_path / "cifar.safetensors")


def test_evaluating_a_cifar_net_on_a_cat_dog_folder(tmp_path, capsys):
    w = _cifar_net(tmp_path)
    data = folder(tmp_path / "pets", {"val/cat": 3, "val/dog": 2}, (32, 32))
    out = tmp_path / "ev"
    assert (
        main(["evaluate", "--weights", str(w), "--data", str(data), "--workers", "0", "--out", str(out)]) == 0
    )
    rows = {r[0]: sum(map(int, r[1:])) for r in list(csv.reader(open(out / "confusion.csv")))[1:]}
    assert rows["cat"] == 3 and rows["dog"] == 2 and rows["airplane"] == rows["automobile"] == 0
    bad = folder(tmp_path / "zoo", {"val/cat": 1, "val/zebra": 1}, (32, 32))
    capsys.readouterr()
    assert main(["evaluate", "--weights", str(w), "--data", str(bad), "--workers", "0"]) == 2
    assert "'zebra' not among the 10 classes of the network" in capsys.readouterr().err


def test_imagenet_weights_on_wnid_folders(tmp_path):
    """1000-class weights name their classes by word (torchvision's, Caffe's cards); ImageNet's own
    val/<wnid>/ folders are matched by WordNet id to the standard order, repeated words and all."""
    import torch

    cats = alexnet.imagenet_categories()
    picked = [0, 134, 517, 999]  # tench, the bird 'crane' (134) and the machine 'crane' (517), toilet tissue
    assert cats[134][1] == cats[517][1] == "crane"
    data = folder(tmp_path / "inet", {f"val/{cats[i][0]}": 1 for i in picked}, (64, 48))
    torch.save(alexnet.create_model("alexnet_owt", seed=0).state_dict(), tmp_path / "tv.pth")
    out = tmp_path / "ev"
    assert (
        main(
            [
                "evaluate",
                "--weights",
                str(tmp_path / "tv.pth"),
                "--data",
                str(data),
                "--workers",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.reader(open(out / "confusion.csv")))[1:]  # one row per true class, in index order
    assert [i for i, r in enumerate(rows) if sum(map(int, r[1:]))] == picked
    names = [name for _, name in cats]
    src = alexnet.data.sources.apply_classes(open_source(str(data), "val"), names, "inet")
    assert sorted(src.labels.tolist()) == picked
    with pytest.raises(BadInput, match="'n99999999' not among the 1000 classes"):  # an id that is no class
        folder(tmp_path / "inet", {"val/n99999999": 1})
        alexnet.data.sources.apply_classes(open_source(str(data), "val"), names, "inet")


def test_evaluating_a_network_without_class_names(tmp_path, capsys):
    w = _cifar_net(tmp_path, classes=[])
    two = folder(tmp_path / "pets", {"val/cat": 1, "val/dog": 1}, (32, 32))
    assert main(["evaluate", "--weights", str(w), "--data", str(two), "--workers", "0"]) == 2
    assert "names no classes, so the 2 classes" in capsys.readouterr().err
    ten = folder(tmp_path / "ten", {f"val/{c}": 1 for c in CIFAR}, (32, 32))
    with pytest.warns(UserWarning, match="names no classes; taking the 10 sorted classes"):
        assert main(["evaluate", "--weights", str(w), "--data", str(ten), "--workers", "0"]) == 0
    flat = folder(tmp_path / "flat", {"val": 2}, (32, 32))
    (tmp_path / "val.txt").write_text("0.png 3\n1.png 10\n")  # Caffe's val.txt, one label too big
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--weights",
                str(w),
                "--data",
                str(flat / "val"),
                "--labels",
                str(tmp_path / "val.txt"),
                "--workers",
                "0",
            ]
        )
        == 2
    )
    assert "1.png has label 10, but" in capsys.readouterr().err


def test_features_of_a_val_split_use_the_training_numbering(tmp_path):
    from alexnet.analysis.features import extract, load_index

    w = _cifar_net(tmp_path)
    data = folder(tmp_path / "d", {"train/ant": 1, "train/bee": 1, "val/bee": 2}, (32, 32))
    idx = load_index(
        extract(str(w), str(data), "pool5", tmp_path / "f.npz", "val", workers=0, progress=False)
    )
    assert idx["labels"].tolist() == [1, 1] and idx["classes"].tolist() == ["ant", "bee"]


def test_prepare_writes_one_class_list(tmp_path):
    src = folder(tmp_path / "d", {"train/ant": 1, "train/bee": 1, "train/cat": 1, "val/cat": 1})
    dst = tmp_path / "shards"
    assert main(["prepare", str(src), str(dst), "--resize", "32", "--workers", "0"]) == 0
    assert (dst / "classes.txt").read_text() == "ant\nbee\ncat\n"  # not the val split's ["cat"]
    with tarfile.open(dst / "val-000000.tar") as tf:
        assert tf.extractfile("000000000.cls").read() == b"2"
    val = open_source(str(dst), "val")
    assert val.classes == ["ant", "bee", "cat"] and val.labels.tolist() == [2]
    (dst / "classes.txt").write_text("x\ny\nz\n")
    with pytest.raises(BadInput, match="lists other classes"):
        from alexnet.data.prepare import prepare

        prepare(str(src), dst, resize=32, workers=0, progress=False)
    with pytest.raises(BadInput, match="--shard-size 0"):
        prepare(str(src), dst, shard_size=0)


def _shard(path, members):
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "label,match",
    [
        (b"3", "has class 3, but .*lists 3 classes"),
        (b"1000000000000", "class number 0..999999"),
        (b"-5", "class number"),
        (b"1" * 40, "class number"),
    ],
)
def test_webdataset_labels_are_bounds_checked(tmp_path, label, match):
    jpg = write_image(tmp_path / "x.jpg").read_bytes()
    _shard(
        tmp_path / "train-000.tar", [("k0.jpg", jpg), ("k0.cls", b"0"), ("k1.jpg", jpg), ("k1.cls", label)]
    )
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    with pytest.raises(BadInput, match=match):
        open_source(str(tmp_path / "train-000.tar"), "train")


def test_webdataset_numbers_without_names_index_the_reference(tmp_path):
    jpg = write_image(tmp_path / "x.jpg").read_bytes()
    _shard(tmp_path / "s.tar", [("k0.jpg", jpg), ("k0.cls", b"4"), ("k1.jpg", jpg), ("k1.cls", b"-1")])
    src = open_source(str(tmp_path / "s.tar"), None)
    assert src.numbered and src.classes == ["0", "1", "2", "3", "4"] and src.labels.tolist() == [4, -1]
    ok = open_source(str(tmp_path / "s.tar"), None, classes=list("abcde"))
    assert ok.classes == list("abcde") and ok.labels.tolist() == [4, -1]
    with pytest.raises(BadInput, match="k0.jpg has label 4, but the network has 3 classes"):
        open_source(str(tmp_path / "s.tar"), None, classes=list("abc"), classes_from="the network")


@pytest.mark.parametrize(
    "line,match",
    [
        ("a.jpg 1000000000000", "expected '<file> <class number"),
        ("a.jpg -3", "expected '<file> <class number"),
    ],
)
def test_caffe_val_txt_is_bounds_checked(tmp_path, line, match):
    write_image(tmp_path / "val" / "a.jpg")
    (tmp_path / "val.txt").write_text(line + "\n")
    with pytest.raises(BadInput, match=match):
        open_source(str(tmp_path / "val"), None, labels_file=str(tmp_path / "val.txt"))
    (tmp_path / "val.txt").write_text("a.jpg 7\n")
    with pytest.raises(BadInput, match="a.jpg has label 7, but the class list given has 5"):
        open_source(str(tmp_path / "val"), None, labels_file=str(tmp_path / "val.txt"), classes=list("abcde"))


def test_flat_imagenet_folder_maps_by_wordnet_id(tmp_path):
    for name in ["n01443537_1_goldfish.jpg", "n01443537_2_goldfish.jpg", "n02084071_7_dog.jpg"]:
        write_image(tmp_path / "s" / name)
    own = open_source(str(tmp_path / "s"), None)
    assert own.classes == ["n01443537", "n02084071"] and own.labels.tolist() == [0, 0, 1]
    wnids = [f"n{i:08d}" for i in range(1000)]
    wnids[1], wnids[207] = "n01443537", "n02084071"  # where a 1000-class net has them
    ref = open_source(str(tmp_path / "s"), None, classes=wnids)
    assert len(ref.classes) == 1000 and ref.labels.tolist() == [1, 1, 207]
    with pytest.raises(BadInput, match="'n02084071' not among the 999 classes"):
        open_source(str(tmp_path / "s"), None, classes=wnids[:207] + wnids[208:])
    with pytest.raises(BadInput, match="by WordNet id, the reference does not"):
        open_source(str(tmp_path / "s"), None, classes=["tench", "goldfish", "dog"])


def test_flat_imagenet_sample_against_a_wordnet_list(data_root):
    folder_ = data_root / "imagenet-sample"
    if not folder_.exists():
        pytest.skip(f"{folder_} is absent")
    own = open_source(str(folder_), None)
    reference = list(reversed(own.classes)) + ["n99999999"]
    mapped = open_source(str(folder_), None, classes=reference)
    assert (mapped.labels == 199 - own.labels).all()  # the same files, renumbered by name


def test_cifar_python_classes_and_labels(tmp_path):
    from test_data_sources import write_cifar

    path, _ = write_cifar(tmp_path / "cifar-10-python.tar.gz")
    own = open_source(str(path), "test")
    rev = open_source(str(path), "test", classes=[f"c{i}" for i in reversed(range(10))])
    assert (rev.labels == 9 - own.labels).all()
    with pytest.raises(BadInput, match=r"'c\d' not among the 2 classes"):
        open_source(str(path), "test", classes=["x", "y"])


def test_out_of_range_cifar_and_fashion_labels(tmp_path):
    import pickle

    from test_data_sources import _cifar_pickle, write_cifar, write_idx

    folder_, members = write_cifar(tmp_path / "c", as_folder=True)
    d = pickle.loads(members["test_batch"], encoding="bytes")
    d[b"labels"][1] = 12
    (folder_ / "cifar-10-batches-py" / "test_batch").write_bytes(_cifar_pickle(d))
    with pytest.raises(BadInput, match="image 1 has label 12, outside the 10 classes"):
        open_source(str(folder_), "test")
    fm = tmp_path / "fm"
    fm.mkdir()
    write_idx(fm / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28)))
    write_idx(fm / "train-labels-idx1-ubyte.gz", np.array([3, 200]))
    with pytest.raises(BadInput, match="image 1 has label 200"):
        open_source(str(fm), "train")
    write_idx(fm / "train-labels-idx1-ubyte.gz", np.array([3, 9]))
    src = open_source(str(fm), "train", classes=["Ankle boot", "Dress", "x"])
    assert src.labels.tolist() == [1, 0]
