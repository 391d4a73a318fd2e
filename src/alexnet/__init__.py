"""alexnet: a faithful, complete and fast AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012).

The Python API follows timm and torchvision (docs/guide.md, "Python API"):

    model = alexnet.create_model("alexnet_owt", pretrained=True, num_classes=10)
    transform = alexnet.create_transform(**alexnet.resolve_data_config(model), train=True)
    dataset = alexnet.data.ImageFolder("flowers/", transform=transform)
"""

from . import data
from .card import Card, default_card, resolve_data_config
from .data.preprocess import create_transform
from .imagenet import imagenet_categories
from .interop.factory import create_model, list_pretrained
from .interop.pretrained import load_pretrained, save_pretrained
from .models import list_models
from .runtime import tune_allocator

__version__ = "0.1.0"
__all__ = [
    "Card",
    "create_model",
    "create_transform",
    "data",
    "default_card",
    "imagenet_categories",
    "list_models",
    "list_pretrained",
    "load_pretrained",
    "resolve_data_config",
    "save_pretrained",
    "tune_allocator",
    "__version__",
]
