"""ONNX export with a dynamic batch, named input and output (`images`, `logits`), the card in the
model's metadata, and (when onnxruntime is installed) a check that the exported graph computes
what the PyTorch model does; and the way back: the weights of a graph we wrote, with its card."""

from __future__ import annotations

import inspect
import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ..card import Card
from ..errors import BadInput
from ..untrusted import regular

INPUT, OUTPUT = "images", "logits"
MAX_ONNX_BYTES = 2 << 30  # protobuf's own limit: larger graphs keep their weights in other files


def export_onnx(model: nn.Module, card: Card, dst: Path, check_tol: float = 1e-4) -> float | None:
    """Write `dst`; return the largest absolute difference between onnxruntime's outputs and the
    model's on three random batches of images (None when onnxruntime is not installed). A graph
    that differs by more than `check_tol` of the largest output is refused."""
    try:
        import onnx
    except ImportError:
        raise ValueError(
            f"{dst}: ONNX export needs the onnx and onnxscript packages (pip install onnx onnxscript)"
        ) from None
    model = model.eval()
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
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
                # optimize=False: the exporter's optimiser merges equal initializers (the constant
                # biases of Caffe's init), after which the file names no longer every parameter and
                # cannot be read back; onnxruntime optimises the graph itself when it loads it
                program = torch.onnx.export(
                    model,
                    (x,),
                    dynamo=True,
                    verbose=False,
                    input_names=[INPUT],
                    output_names=[OUTPUT],
                    optimize=False,
                    dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                )
        finally:
            log.setLevel(level)
        program.save(str(dst))
    else:  # torch 2.4: the TorchScript exporter (it merges equal weights: not read back), a dynamic batch
        torch.onnx.export(
            model,
            (x,),
            str(dst),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=17,
        )
    proto = onnx.load(str(dst))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "card", card.to_json()
    onnx.save(proto, str(dst))
    return check_onnx(model, card, dst, check_tol)


def check_onnx(model: nn.Module, card: Card, path: Path, tol: float = 1e-4) -> float | None:
    """The largest |onnxruntime - PyTorch| over three random images (a batch size the export
    never saw); None without onnxruntime. More than `tol` of the largest output: ValueError."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, card.in_channels, card.input_size, card.input_size) * 50
    with torch.no_grad():
        want = model(x).numpy()
    got = session.run([OUTPUT], {INPUT: x.numpy()})[0]
    diff = float(abs(got - want).max())
    if diff > tol * max(float(abs(want).max()), 1e-12):
        raise ValueError(
            f"{path}: the ONNX graph differs from the PyTorch model by {diff:.2e} "
            f"(largest output {abs(want).max():.2e})"
        )
    return diff


def read_onnx(path: Path) -> tuple[Card, dict[str, torch.Tensor]]:
    """(card, the graph's initializers by name) of an .onnx file that `alexnet convert` wrote:
    its weights are initializers named as the model's parameters. A graph from elsewhere (no
    card) is refused in one line: onnxruntime runs it, this package does not rebuild it."""
    regular(path, str(path), MAX_ONNX_BYTES)
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise BadInput(f"{path}: reading .onnx needs the onnx package (pip install onnx)") from None
    try:  # protobuf only: nothing in the file runs; weights in other files are never followed
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise BadInput(f"{path}: not a readable ONNX file ({type(e).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if "card" not in meta:
        raise BadInput(
            f"{path}: an ONNX graph without a model card (not written by `alexnet convert`); "
            "run it with onnxruntime, or convert the weights it came from"
        )
    try:
        card = Card.from_dict(json.loads(meta["card"]), str(path))
    except json.JSONDecodeError:
        raise BadInput(f"{path}: its metadata 'card' is not JSON") from None
    tensors = {}
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise BadInput(
                f"{path}: its weights live in other files (ONNX external data); "
                "only self-contained graphs are read"
            )
        try:
            tensors[init.name] = torch.from_numpy(numpy_helper.to_array(init).copy())
        except (ValueError, TypeError) as e:  # dims that the stored bytes do not fill, strings
            raise BadInput(
                f"{path}: initializer {init.name[:80]!r} is not a tensor of numbers ({e})"
            ) from None
    return card, tensors
