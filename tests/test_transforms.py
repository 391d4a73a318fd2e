"""Batched augmentation: exact crop/flip positions, 10-crop, PCA noise statistics, normalisation."""

import pytest
import torch

from alexnet.data.transforms import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    TEN_CROP_ORDER,
    Normalizer,
    Pipeline,
    pca_noise,
    random_crop_flip,
    random_resized_crop,
    ten_crops,
)


def coded_batch(n=6, s=12):
    """Pixel value encodes (image, channel, row, col) so every crop is identifiable."""
    i, c, y, x = torch.meshgrid(
        torch.arange(n), torch.arange(3), torch.arange(s), torch.arange(s), indexing="ij"
    )
    return ((i * 41 + c * 97 + y * s + x) % 256).to(torch.uint8)


def test_random_crop_flip_is_pixel_exact():
    b = coded_batch()
    g = torch.Generator().manual_seed(0)
    flips, tops = 0, set()
    for _ in range(50):
        crops, box = random_crop_flip(b, 5, g)
        assert torch.equal(box.apply(b, gather=True), crops)  # the GPU path gives the same crops
        for k in range(len(b)):
            top, left = box.top[k].item(), box.left[k].item()
            patch = b[k, :, top : top + 5, left : left + 5]
            mirrored = bool(box.flip[k])
            flips += int(mirrored)
            tops.add(top)
            want = patch.flip(-1) if mirrored else patch
            assert torch.equal(crops[k], want)
    assert tops == set(range(8))  # every offset 0..S-size occurs
    assert 0.4 < flips / 300 < 0.6  # p = 0.5


def test_ten_crops_positions_and_order():
    b = coded_batch(2, 10)
    crops = list(ten_crops(b, 6))
    assert len(crops) == 10 and TEN_CROP_ORDER == (
        "top-left",
        "top-right",
        "bottom-left",
        "bottom-right",
        "centre",
    )
    expect = [b[..., :6, :6], b[..., :6, 4:], b[..., 4:, :6], b[..., 4:, 4:], b[..., 2:8, 2:8]]
    for i, want in enumerate(expect):
        assert torch.equal(crops[i][0], want)
        assert torch.equal(crops[i + 5][0], want.flip(-1))


def test_pca_noise_statistics():
    eigval, eigvec = (
        torch.tensor(IMAGENET_EIGVAL, dtype=torch.float64),
        torch.tensor(IMAGENET_EIGVEC, dtype=torch.float64),
    )
    g = torch.Generator().manual_seed(0)
    noise = pca_noise(200_000, eigval, eigvec, 0.1, g)
    proj = noise @ eigvec  # coordinates along p_i: alpha_i * lambda_i, alpha ~ N(0, 0.1)
    torch.testing.assert_close(proj.std(0), 0.1 * eigval, rtol=0.01, atol=0)
    torch.testing.assert_close(proj.mean(0), torch.zeros(3, dtype=torch.float64), atol=3e-4, rtol=0)
    cov = torch.cov(noise.T)
    torch.testing.assert_close(cov, eigvec @ torch.diag((0.1 * eigval) ** 2) @ eigvec.T, atol=2e-5, rtol=0)


def test_normalizer_mean_image_follows_the_crop():
    b = torch.full((2, 3, 8, 8), 128, dtype=torch.uint8)
    mean = torch.arange(3 * 64, dtype=torch.float32).reshape(3, 8, 8) / 1000
    norm = Normalizer(mean, scale=255.0)
    crops, box = random_crop_flip(b, 4, torch.Generator().manual_seed(1))
    out = norm(crops, box)
    assert torch.equal(box.apply(mean, gather=True), box.apply(mean))
    for k in range(2):
        top, left = box.top[k].item(), box.left[k].item()
        m = mean[:, top : top + 4, left : left + 4]
        m = m.flip(-1) if box.flip[k] else m
        torch.testing.assert_close(out[k], (128 / 255 - m) * 255, rtol=1e-5, atol=1e-4)
    std = Normalizer(torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.5, 1.0]), scale=1.0, bgr=True)
    y = std(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    assert y[0, :, 0, 0].tolist() == [0.5, 1.0, 2.0]  # BGR order: the blue channel first


def test_random_resized_crop_identity_and_range():
    b = coded_batch(3, 16)
    same = random_resized_crop(
        b, 16, torch.Generator().manual_seed(0), scale=(1, 1), ratio=(1, 1), flip=False
    )
    torch.testing.assert_close(same, b.float(), atol=1e-3, rtol=0)
    out = random_resized_crop(b, 8, torch.Generator().manual_seed(0))
    assert out.shape == (3, 3, 8, 8) and out.min() >= 0 and out.max() <= 255


def test_pipeline_shapes_and_reproducibility():
    b = coded_batch(4, 32)
    p = Pipeline(Normalizer(torch.zeros(3)), crop=27)
    a = p.train(b, torch.Generator().manual_seed(5))
    assert a.shape == (4, 3, 27, 27) and a.dtype == torch.float32
    assert torch.equal(a, p.train(b, torch.Generator().manual_seed(5)))
    assert p.eval(b).shape == (4, 3, 27, 27) and p.eval(b, "10").shape == (4, 10, 3, 27, 27)
    torch.testing.assert_close(p.eval(b, "10")[:, 4], p.eval(b))  # the 5th crop is the centre
    rrc = Pipeline(Normalizer(torch.zeros(3, 32, 32)), crop=27, random_resized=True)
    assert rrc.train(b, torch.Generator().manual_seed(0)).shape == (4, 3, 27, 27)
    with pytest.raises(ValueError, match="crops must be"):
        p.eval(b, "5")


@pytest.mark.parametrize("mean_image", [False, True])
def test_channels_last_batches_in_either_layout_out_with_the_same_values(mean_image):
    """The loader stacks uint8 batches channels_last; the pipeline writes its float batch in the
    model's layout as it converts (no copy after), and the values do not depend on either layout."""
    b = coded_batch(4, 32)
    bl = b.contiguous(memory_format=torch.channels_last)
    crops, box = random_crop_flip(bl, 27, torch.Generator().manual_seed(2))
    for gather in (False, True):  # the CPU slices and the one-kernel gather of the GPU
        got = box.apply(bl, gather=gather)
        assert torch.equal(got, box.apply(b, gather=gather)) and torch.equal(got, crops)
        assert got.is_contiguous(memory_format=torch.channels_last) and not got.is_contiguous()
    mean = torch.rand(3, 32, 32) if mean_image else torch.rand(3)
    for want_cl in (False, True):
        p = Pipeline(
            Normalizer(mean, torch.tensor([0.2, 0.3, 0.4]), bgr=True), crop=27, channels_last=want_cl
        )
        for src in (b, bl):
            outs = [
                p.train(src, torch.Generator().manual_seed(5)),
                p.eval(src),
                p.eval(src, "10").flatten(0, 1),
            ]
            ref = Pipeline(Normalizer(mean, torch.tensor([0.2, 0.3, 0.4]), bgr=True), crop=27)
            for got, want in zip(
                outs,
                [
                    ref.train(b, torch.Generator().manual_seed(5)),
                    ref.eval(b),
                    ref.eval(b, "10").flatten(0, 1),
                ],
            ):
                assert torch.equal(got, want)
            for out in outs[:2]:
                assert out.is_contiguous(
                    memory_format=torch.channels_last if want_cl else torch.contiguous_format
                )
