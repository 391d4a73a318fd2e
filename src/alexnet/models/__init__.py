"""The model zoo. Importing the definition modules fills the registry."""

from . import alexnet as _alexnet  # noqa: F401  (registers alexnet, alexnet_caffe, caffenet, alexnet_owt)
from . import cuda_convnet as _cuda_convnet  # noqa: F401  (registers cifar_local_11pct, cifar_local_13pct)
from . import variants as _variants  # noqa: F401  (registers alexnet_bn, alexnet_d2l, cifar_convnet)
from .base import ConvNet
from .features import FeatureInfo, FeatureNet
from .registry import create_model, list_models, model_info, model_table

__all__ = ["ConvNet", "FeatureInfo", "FeatureNet", "create_model", "list_models", "model_info", "model_table"]
