"""The batched augmentation runs wherever its batch is (issue 13 §2: uint8 to the device, crops,
flips, PCA noise and normalisation there). Checked on the "meta" device, which has no data: any
host read-back (.item(), .tolist(), a Python `if` on a tensor) or any tensor made on the CPU and
mixed in raises there, just as on a GPU it would stall the stream or fail."""

import pytest
import torch

from alexnet.data.transforms import CropBox, Normalizer, Pipeline


def meta_batch(n=4, s=32, channels_last=False):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(n, 3, s, s, dtype=torch.uint8, device="meta").contiguous(memory_format=fmt)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])  # the loader's: nhwc
@pytest.mark.parametrize("mean_image,std,bgr", [(True, False, False), (False, True, True)])
def test_pipeline_never_leaves_the_device(mean_image, std, bgr, channels_last):
    mean = torch.rand(3, 32, 32) if mean_image else torch.tensor([0.485, 0.456, 0.406])
    norm = Normalizer(mean, torch.tensor([0.229, 0.224, 0.225]) if std else None, 255.0, bgr)
    pipe = Pipeline(norm, crop=24, channels_last=channels_last).to("meta")
    batch = meta_batch(channels_last=channels_last)
    for out, shape in [
        (pipe.train(batch), (4, 3, 24, 24)),
        (pipe.eval(batch), (4, 3, 24, 24)),
        (pipe.eval(batch, "10"), (4, 10, 3, 24, 24)),
    ]:
        assert out.device.type == "meta" and out.dtype == torch.float32 and out.shape == shape
    pipe.random_resized = True
    assert pipe.train(batch).shape == (4, 3, 24, 24)


def test_the_check_catches_a_host_read_back():
    """The CPU form of CropBox.apply reads the corners back with .tolist(): meta refuses it."""
    box = CropBox(
        torch.zeros(4, dtype=torch.long, device="meta"), torch.zeros(4, dtype=torch.long, device="meta"), 24
    )
    assert box.apply(meta_batch()).device.type == "meta"  # off the CPU: the one-kernel gather
    with pytest.raises((NotImplementedError, RuntimeError)):
        box.apply(meta_batch(), gather=False)
