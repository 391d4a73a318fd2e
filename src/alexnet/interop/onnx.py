"""ONNX export with a dynamic batch, the card in the model's metadata, and (when onnxruntime is
installed) a check that the exported graph computes what the PyTorch model does."""
from __future__ import annotations

import inspect
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ..card import Card


def export_onnx(model: nn.Module, card: Card, dst: Path, check_tol: float = 1e-4) -> Path:
    try:
        import onnx
    except ImportError:
        raise ValueError(f"{dst}: ONNX export needs the onnx and onnxscript packages "
                         "(pip install onnx onnxscript)") from None
    model = model.eval()
    x = torch.randn(2, card.in_channels, card.input_size, card.input_size) * 50
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:  # torch >= 2.5: the torch.export path
        # the exporter logs one line per torchvision op it cannot register (we use none) and
        # torch's pytree warns about its own deprecated API: nothing a user can act on
        log = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
                program = torch.onnx.export(model, (x,), dynamo=True, verbose=False,
                                            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        finally:
            log.setLevel(level)
        program.save(str(dst))
    else:  # torch 2.4: the TorchScript exporter, the batch dimension named dynamic
        torch.onnx.export(model, (x,), str(dst), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
    proto = onnx.load(str(dst))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "card", card.to_json()
    onnx.save(proto, str(dst))
    try:
        import onnxruntime
    except ImportError:
        return dst
    session = onnxruntime.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    x = torch.randn(3, card.in_channels, card.input_size, card.input_size) * 50
    with torch.no_grad():
        want = model(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    err = float(abs(got - want).max() / max(abs(want).max(), 1e-12))
    if err > check_tol:
        raise ValueError(f"{dst}: the ONNX graph differs from the PyTorch model by {err:.2e} (relative)")
    return dst
