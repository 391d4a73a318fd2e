"""Layers the 2012 network needs that torch does not provide exactly."""

from .local import LocallyConnected2d
from .lrn import LocalResponseNorm, lrn_reference

__all__ = ["LocalResponseNorm", "LocallyConnected2d", "lrn_reference"]
