"""AIR, the target model: a grid-structured Attend-Infer-Repeat VAE in Pyro.

It explains an image as background plus objects (presence, box, appearance and alpha mask per
slot of a grid of cells), learns without labels from the user's images and becomes
semi-supervised where masks or points are committed. :mod:`.model` holds the registered
:class:`AirModel`, :mod:`.generative` the generative story, :mod:`.training` for SVI, :mod:`.inference` for prediction and :mod:`.fusion` for its
test-time grid shifts.

Importing this package does not import torch or Pyro (the parameter classes are read without
them); :class:`AirModel` and the other names below load them on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from .params import AirParams, AirTrainParams

_LAZY = {
    "AirModel": ".model",
    "NetConfig": ".checkpoint",
    "grid_offsets": ".model",
    "half_cell_shifts": ".model",
}

__all__ = [
    "AirModel",
    "AirParams",
    "AirTrainParams",
    "NetConfig",
    "grid_offsets",
    "half_cell_shifts",
]


def __getattr__(name: str) -> Any:
    """The model class and helpers, imported (with torch) when first asked for."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
