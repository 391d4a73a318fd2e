"""Decoding: colour modes, bad files, bombs, draft mode, the loader's skipping and sharding."""

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.data import Decoding, EpochSampler, make_loader, open_dataset
from alexnet.data.decode import BadImage, decode, open_image
from conftest import write_image


@pytest.mark.parametrize(
    "mode,ext", [("L", "png"), ("CMYK", "jpg"), ("P", "png"), ("RGBA", "png"), ("RGB", "jpg")]
)
def test_modes_become_rgb(tmp_path, mode, ext):
    p = write_image(tmp_path / f"x.{ext}", (60, 50), mode)
    x = decode(p.read_bytes(), p.name, resize=None, crop=None)
    assert x.shape == (3, 50, 60) and x.dtype == torch.uint8


def test_transparency_lies_on_white(tmp_path):
    arr = np.zeros((4, 4, 4), dtype=np.uint8)
    arr[..., 0] = 200  # red, fully transparent except one pixel
    arr[0, 0, 3] = 255
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    x = decode(buf.getvalue(), "a.png", resize=None, crop=None)
    assert x[:, 0, 0].tolist() == [200, 0, 0] and x[:, 1, 1].tolist() == [255, 255, 255]


def test_resize_shorter_side_and_centre_crop(tmp_path):
    p = write_image(tmp_path / "x.png", (512, 300))
    x = decode(p.read_bytes(), "x", resize=256, crop=None)
    assert x.shape == (3, 256, round(512 * 256 / 300))
    arr = np.asarray(Image.open(p))
    c = decode(p.read_bytes(), "x", resize=None, crop=100)  # crop alone is pixel-exact
    assert np.array_equal(c.permute(1, 2, 0).numpy(), arr[100:200, 206:306])


def test_jpeg_draft_mode_decodes_smaller(tmp_path):
    p = write_image(tmp_path / "big.jpg", (2048, 1536))
    img = open_image(p.read_bytes(), "big", resize=256)
    assert img.size == (512, 384)  # 1/4 scale keeps the shorter side >= 256; 1/8 would not
    assert open_image(p.read_bytes(), "big").size == (2048, 1536)
    assert decode(p.read_bytes(), "big").shape == (3, 256, 256)


@pytest.mark.parametrize(
    "data,match",
    [
        (b"not an image at all", "not a readable image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 50, "not a readable image"),
    ],
)
def test_bad_bytes(data, match):
    with pytest.raises(BadImage, match=match):
        decode(data, "bad.jpg")


def test_truncated_jpeg(tmp_path):
    data = write_image(tmp_path / "t.jpg", (300, 300)).read_bytes()
    with pytest.raises(BadImage, match="t.jpg"):
        decode(data[: len(data) // 2], "t.jpg")


def test_decompression_bomb_is_refused(tmp_path):
    p = write_image(tmp_path / "b.png", (100, 100))
    with pytest.raises(BadImage, match="exceeds the limit of 1,000"):
        decode(p.read_bytes(), "b.png", max_pixels=1000)


def test_loader_skips_and_counts_bad_files(image_folder):
    (image_folder / "train" / "ant" / "broken.jpg").write_bytes(b"garbage")
    (image_folder / "train" / "bee" / "half.jpg").write_bytes(
        (image_folder / "train" / "bee" / "0.jpg").read_bytes()[:200]
    )
    ds = open_dataset(str(image_folder), "train", Decoding(32, 32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(make_loader(ds, 5, shuffle=False, workers=0))
    assert sum(len(b.images) for b in batches) == 12
    skipped = sorted(n.rsplit("/", 1)[-1] for b in batches for n in b.skipped)
    assert skipped == ["broken.jpg", "half.jpg"]
    assert any("broken.jpg" in str(w.message) for w in caught)
    assert batches[0].images.shape[1:] == (3, 32, 32) and batches[0].images.dtype == torch.uint8


def test_loader_with_workers(image_folder):
    ds = open_dataset(str(image_folder), "val", Decoding(24, 24))
    labels = torch.cat([b.labels for b in make_loader(ds, 4, shuffle=False, workers=2)])
    assert labels.tolist() == ds.source.labels.tolist()


def test_epoch_sampler_order_shards_and_resume():
    s = EpochSampler(10, seed=3)
    s.set_epoch(0)
    a = list(s)
    s.set_epoch(0)
    assert list(s) == a and sorted(a) == list(range(10))
    s.set_epoch(1)
    assert list(s) != a
    s.set_epoch(0, skip=4)
    assert list(s) == a[4:]
    ranks = [list(EpochSampler(10, seed=3, rank=r, world=3)) for r in range(3)]
    assert all(len(r) == 4 for r in ranks) and set(sum(ranks, [])) == set(range(10))
    g = EpochSampler(9, seed=1, groups=[range(0, 3), range(3, 6), range(6, 9)])
    order = list(g)
    blocks = [order[i : i + 3] for i in (0, 3, 6)]
    assert all(len({i // 3 for i in blk}) == 1 for blk in blocks)  # a shard is read contiguously
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_resizing_only_the_kept_centre_matches_resize_then_crop(tmp_path):
    p = write_image(tmp_path / "x.png", (500, 375))
    smooth = Image.open(p).resize((50, 38)).resize((500, 375), Image.BILINEAR)  # natural-ish image
    smooth.save(p)
    fast = decode(p.read_bytes(), "x", resize=256, crop=256).float()
    full = decode(p.read_bytes(), "x", resize=256, crop=None)  # 341 x 256
    left = (full.shape[2] - 256) // 2
    ref = full[:, :, left : left + 256].float()
    assert fast.shape == ref.shape == (3, 256, 256)
    assert (fast - ref).abs().mean() < 1.0 and (fast - ref).abs().max() < 16


# ---- real-world files (issue 11 §4) -------------------------------------------------------------
@pytest.mark.parametrize(
    "arr,fmt,want",
    [
        (np.full((6, 8), 32768, np.uint16), "PNG", 128),  # 16-bit mid-grey: 32768 * 255 / 65535
        (np.full((6, 8), 65535, np.uint16), "PNG", 255),
        (np.full((6, 8), 4096, np.uint16), "TIFF", 16),  # 4096 * 255 / 65535 = 15.9
        (np.full((6, 8), 2**30, np.int32), "TIFF", 128),  # signed 32-bit: 2^30 * 255 / (2^31 - 1)
        (np.full((6, 8), -7, np.int32), "TIFF", 0),
        (np.full((6, 8), 0.25, np.float32), "TIFF", 64),  # float images live in 0..1
        (np.full((6, 8), 3.0, np.float32), "TIFF", 255),
    ],
)
def test_high_bit_depth_images_are_scaled_to_their_range(arr, fmt, want):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    x = decode(buf.getvalue(), f"x.{fmt.lower()}", resize=None, crop=None)
    assert x.shape == (3, 6, 8) and set(x.flatten().tolist()) == {want}
    grey = decode(buf.getvalue(), "x", resize=None, crop=None, rgb=False)
    assert grey.shape == (1, 6, 8) and int(grey[0, 0, 0]) == want


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red, right half blue, as stored
    arr[:, 20:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the left edge becomes the top
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    x = decode(buf.getvalue(), "phone.jpg", resize=None, crop=None)
    assert x.shape == (3, 40, 20)
    top, bottom = x[:, :15].float().mean((1, 2)), x[:, 25:].float().mean((1, 2))
    assert top[0] > 200 and top[2] < 50 and bottom[2] > 200 and bottom[0] < 50


def test_native_size_brings_an_odd_image_to_the_common_size(tmp_path):
    for i in range(1, 4):
        write_image(tmp_path / "d" / "c" / f"{i}.png", (32, 32), seed=i)
    write_image(
        tmp_path / "d" / "c" / "0.png", (48, 40), seed=3
    )  # one odd file, first, among CIFAR-sized ones
    ds = open_dataset(str(tmp_path / "d"), None, Decoding(None, None))
    with pytest.warns(UserWarning, match=r"0.png: 48x40, not the 32x32 of this dataset's images"):
        batch = next(iter(make_loader(ds, 4, shuffle=False, workers=0)))
    assert batch.images.shape == (4, 3, 32, 32) and not batch.skipped
    ref = np.asarray(Image.open(tmp_path / "d" / "c" / "0.png").resize((38, 32), Image.BILINEAR))[:, 3:35]
    assert np.abs(batch.images[0].permute(1, 2, 0).numpy().astype(int) - ref).mean() < 12


def test_unequal_sizes_in_one_batch_are_a_clear_error(tmp_path):
    write_image(tmp_path / "d" / "c" / "a.png", (40, 30))
    write_image(tmp_path / "d" / "c" / "b.png", (30, 40))
    ds = open_dataset(str(tmp_path / "d"), None, Decoding(resize=30, crop=None))
    with pytest.raises(ValueError, match="images of different sizes in one batch"):
        next(iter(make_loader(ds, 2, shuffle=False, workers=0)))


@pytest.mark.parametrize("size", [(500, 347), (347, 500), (640, 427), (32, 32)])
def test_fit_to_the_native_size_never_gives_a_negative_box(size):
    """500x347 -> 32x32: (347 * 32/347 - 32) / 2 is -1.8e-15 in floats, which Pillow refused
    as a negative box offset; the box is the centred 347x347 (or 500x500...) square, by hand."""
    from alexnet.data.decode import resize_crop

    w, h = size
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = resize_crop(img, "photo.jpg", None, None, fit=(32, 32))
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    want = np.asarray(img.resize((32, 32), Image.BILINEAR, box=box))
    assert x.shape == (3, 32, 32) and np.array_equal(x.permute(1, 2, 0).numpy(), want)


def test_a_loader_workers_failure_is_one_clean_line(image_folder, tmp_path, monkeypatch, capsys):
    """A defect met in a worker process (not a bad file: those are skipped) fails the command with
    one line naming the worker and the file, not the worker's traceback folded into one line."""
    import alexnet.data.dataset as dataset
    from alexnet.cli import main

    def broken(*a, **k):
        raise ValueError("box offset can't be negative")

    monkeypatch.setattr(dataset, "decode", broken)  # forked workers inherit it
    assert (
        main(["stats", "--data", str(image_folder), "--out", str(tmp_path / "s.pt"), "--workers", "1"]) == 1
    )
    err = [
        line for line in capsys.readouterr().err.splitlines() if line and "%|" not in line
    ]  # (progress bars)
    assert len(err) == 1 and err[0].startswith("alexnet stats: error: data-loading worker process 0: ")
    assert err[0].endswith(".jpg: ValueError: box offset can't be negative") and "Traceback" not in err[0]
