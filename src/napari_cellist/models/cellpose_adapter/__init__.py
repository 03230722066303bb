"""Cellpose 3 as a napari-cellist base model (registry name ``"cellpose"``).

Importing this package checks that a supported Cellpose is installed (raising ImportError with
the install command otherwise, which the registry turns into ``ModelUnavailableError``) but does
not import torch or Cellpose; they are imported when a network is built.
"""

from __future__ import annotations

from ._backend import check_cellpose_version
from .model import CellposeModel
from .params import CellposeParams, CellposeTrainParams

check_cellpose_version()

__all__ = ["CellposeParams", "CellposeModel", "CellposeTrainParams"]
