"""The part of Caffe's caffe.proto that a .caffemodel's weights live in, as a protobuf schema
built in code (no protoc needed). Field numbers are Caffe's; everything else in a file is skipped
by the protobuf parser as unknown fields.

    message BlobShape { repeated int64 dim = 1 [packed = true]; }
    message BlobProto { optional BlobShape shape = 7; repeated float data = 5 [packed = true];
                        repeated double double_data = 8 [packed = true];
                        optional int32 num = 1; channels = 2; height = 3; width = 4; }  // legacy
    message LayerParameter { optional string name = 1; optional string type = 2;
                             repeated string bottom = 3; repeated string top = 4;
                             repeated BlobProto blobs = 7; }
    message V1LayerParameter { repeated string bottom = 2; repeated string top = 3;
                               optional string name = 4; optional LayerType type = 5;
                               repeated BlobProto blobs = 6; }     // LayerType as int32 here
    message NetParameter { optional string name = 1; repeated V1LayerParameter layers = 2;
                           repeated LayerParameter layer = 100; }
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
V1_TYPES = {
    4: "Convolution",
    14: "InnerProduct",
    15: "LRN",
    17: "Pooling",
    18: "ReLU",
    6: "Dropout",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    5: "Data",
    1: "Accuracy",
}  # V1LayerParameter.LayerType


def _message(fdp, name: str, fields: list[tuple]) -> None:
    msg = fdp.message_type.add(name=name)
    for fname, number, ftype, label, type_name, packed in fields:
        f = msg.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = f".caffe_min.{type_name}"
        if packed:
            f.options.packed = True


def _build():
    fdp = descriptor_pb2.FileDescriptorProto(name="caffe_min.proto", package="caffe_min", syntax="proto2")
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    _message(fdp, "BlobShape", [("dim", 1, F.TYPE_INT64, rep, None, True)])
    _message(
        fdp,
        "BlobProto",
        [
            ("num", 1, F.TYPE_INT32, opt, None, False),
            ("channels", 2, F.TYPE_INT32, opt, None, False),
            ("height", 3, F.TYPE_INT32, opt, None, False),
            ("width", 4, F.TYPE_INT32, opt, None, False),
            ("data", 5, F.TYPE_FLOAT, rep, None, True),
            ("shape", 7, F.TYPE_MESSAGE, opt, "BlobShape", False),
            ("double_data", 8, F.TYPE_DOUBLE, rep, None, True),
        ],
    )
    _message(
        fdp,
        "LayerParameter",
        [
            ("name", 1, F.TYPE_STRING, opt, None, False),
            ("type", 2, F.TYPE_STRING, opt, None, False),
            ("bottom", 3, F.TYPE_STRING, rep, None, False),
            ("top", 4, F.TYPE_STRING, rep, None, False),
            ("blobs", 7, F.TYPE_MESSAGE, rep, "BlobProto", False),
        ],
    )
    _message(
        fdp,
        "V1LayerParameter",
        [
            ("bottom", 2, F.TYPE_STRING, rep, None, False),
            ("top", 3, F.TYPE_STRING, rep, None, False),
            ("name", 4, F.TYPE_STRING, opt, None, False),
            ("type", 5, F.TYPE_INT32, opt, None, False),
            ("blobs", 6, F.TYPE_MESSAGE, rep, "BlobProto", False),
        ],
    )
    _message(
        fdp,
        "NetParameter",
        [
            ("name", 1, F.TYPE_STRING, opt, None, False),
            ("layers", 2, F.TYPE_MESSAGE, rep, "V1LayerParameter", False),
            ("layer", 100, F.TYPE_MESSAGE, rep, "LayerParameter", False),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe_min.{name}"))
        for name in ("BlobShape", "BlobProto", "LayerParameter", "V1LayerParameter", "NetParameter")
    }


MESSAGES = _build()
NetParameter = MESSAGES["NetParameter"]
