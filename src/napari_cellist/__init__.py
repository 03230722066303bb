"""napari-cellist: interactive, model-assisted labelling of microscopy images.

The package is a pure core (numpy / scikit-image / SQLAlchemy, with torch, Pyro, Cellpose and
Segment Anything imported lazily by the model adapters) under thin napari widgets that live in
:mod:`napari_cellist._widgets`, the only sub-package that imports Qt.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
