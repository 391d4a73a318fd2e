"""torch.hub entry points: `torch.hub.load("<owner>/alexnet", "alexnet_owt", pretrained=True)`, or
from a checkout, `torch.hub.load("path/to/alexnet", "caffenet", source="local", pretrained=True)`.
Every entry takes create_model's arguments (pretrained, num_classes, in_chans, features_only, ...)."""

import sys as _sys
from pathlib import Path as _Path

dependencies = ["torch", "numpy", "PIL", "tqdm", "yaml", "google.protobuf", "safetensors"]

# this checkout's package, whether or not it is installed (torch.hub puts only this folder on sys.path):
# every callable here not starting with _ is an entry (torch.hub.list)
_SRC = _Path(__file__).resolve().parent / "src"
if "alexnet" not in _sys.modules and (_SRC / "alexnet").is_dir():
    _sys.path.insert(0, str(_SRC))

from alexnet import create_model as _create  # noqa: E402
from alexnet import list_models as _list_models  # noqa: E402


def _entry(name: str):
    def entry(pretrained=False, **kwargs):
        return _create(name, pretrained=pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"create_model({name!r}, pretrained=pretrained, **kwargs): see help(alexnet.create_model)."
    )
    return entry


# one entry per registered model, named as the model (torch.hub.list shows them all)
for _name in _list_models():
    globals()[_name] = _entry(_name)
