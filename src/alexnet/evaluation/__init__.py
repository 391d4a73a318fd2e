"""Measuring trained networks: errors, multi-crop and ensembles, per-class results."""
