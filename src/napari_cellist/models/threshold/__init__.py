"""Threshold base model (``threshold`` in the registry)."""

from __future__ import annotations

from .model import ThresholdModel
from .params import METHODS, SCALES, ThresholdFitParams, ThresholdParams
from .pipeline import segment

__all__ = [
    "METHODS",
    "SCALES",
    "ThresholdFitParams",
    "ThresholdModel",
    "ThresholdParams",
    "segment",
]
