"""`alexnet convert`: pretrained weights in any known format to ours, card included."""

from __future__ import annotations

from pathlib import Path

from ..errors import shown
from ..interop.onnx import export_onnx
from ..interop.pretrained import load_pretrained, save_pretrained
from .options import add, class_names, command, model


def register(sub) -> None:
    s = command(
        sub,
        "convert",
        "pretrained weights to .safetensors, .pt or .onnx, card included",
        "Read weights in any format we know (Caffe, caffe-tensorflow .npy, torchvision, Keras,\n"
        "ours) and write them with their card (model, preprocessing, class names) as .safetensors,\n"
        ".pt or .onnx.",
        "alexnet convert bvlc_alexnet.caffemodel bvlc_alexnet.safetensors --class-names synset_words.txt",
        run,
    )
    add(s, "src", help="a weights file or a name from `alexnet weights`")
    add(s, "dst", help="the file to write; its suffix chooses the format: .safetensors, .pt or .onnx")
    model(s)
    class_names(
        s,
        default_text="the file's names, or ImageNet's for 1000 classes",
        help="class names for the card: synset_words.txt or imagenet_class_index.json",
    )
    add(
        s,
        "--mean",
        default=None,
        metavar="FILE",
        default_text="the format's per-channel mean",
        help="Caffe's mean image for the card (imagenet_mean.binaryproto or ilsvrc_2012_mean.npy), "
        "cropped as Caffe crops it",
    )


def run(args) -> int:
    model, card = load_pretrained(args.src, args.model, args.class_names, mean=args.mean)
    out, checked = Path(args.dst), ""
    if out.suffix == ".onnx":  # exported, then run in onnxruntime against the model
        diff = export_onnx(model, card, out)
        checked = (
            "; not checked: onnxruntime is not installed"
            if diff is None
            else f"; checked in onnxruntime on 3 random images: max |difference| {diff:.2e}"
        )
    else:
        save_pretrained(model, card, out)
    print(
        f"{args.src}{f' ({shown(card.source)})' if card.source else ''} -> {out} as {card.model}: "
        f"{card.channel_order}, pixels x{card.pixel_scale:g}, input {card.input_size}, "
        f"{card.num_classes} classes{checked}"
    )
    return 0
