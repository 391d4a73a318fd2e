"""alexnet: a faithful, complete and fast AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012)."""
from .imagenet import imagenet_categories
from .interop.pretrained import load_pretrained, save_pretrained
from .models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "imagenet_categories", "list_models", "load_pretrained", "save_pretrained",
           "__version__"]
