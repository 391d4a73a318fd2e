"""Layers the 2012 network needs that torch does not provide exactly."""
from .lrn import LocalResponseNorm, lrn_reference

__all__ = ["LocalResponseNorm", "lrn_reference"]
