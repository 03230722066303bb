"""Frozen dataclasses shared by every part of napari-cellist.

Conventions used throughout the package
---------------------------------------
* Spatial arrays are in napari's axis order: ``(Y, X)`` for 2D and ``(Z, Y, X)`` for 3D, i.e.
  ``(row, col)`` / ``(plane, row, col)``. Units are pixels unless a docstring says otherwise.
* A label map is an integer array of the image's spatial shape, ``0`` = background and
  ``1..N`` = object ids (not necessarily consecutive).
* A box is ``(min_row, min_col, max_row, max_col)`` in 2D and
  ``(min_plane, min_row, min_col, max_plane, max_row, max_col)`` in 3D, half-open like
  :func:`skimage.measure.regionprops` ``bbox``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

DEFAULT_CLASS = "object"


@dataclass(frozen=True)
class ObjectMeta:
    """Metadata of one predicted or annotated object.

    Parameters
    ----------
    label_id : int
        Id of the object in the label map (> 0).
    score : float
        Confidence in [0, 1] (1.0 for objects drawn by a person).
    class_name : str
        Class the object belongs to.
    box : tuple of int
        Bounding box, see the module docstring.
    source : str
        Name of the model (``"threshold"``, ``"air"``, ...) or ``"manual"``.
    model_version : int or None
        Store id of the model version that produced it, if known.
    """

    label_id: int
    score: float = 1.0
    class_name: str = DEFAULT_CLASS
    box: tuple[int, ...] = ()
    source: str = "manual"
    model_version: int | None = None


@dataclass(frozen=True)
class Prediction:
    """What every model returns.

    Parameters
    ----------
    labels : np.ndarray
        int32 instance label map, shape ``(Y, X)`` or ``(Z, Y, X)``.
    objects : Mapping[int, ObjectMeta]
        Per-object metadata keyed by label id; every non-zero id in ``labels`` has an entry.
    source : str
        Model name.
    model_version : int or None
        Store id of the model version used, if any.
    extras : Mapping[str, np.ndarray]
        Optional extra images of the image's spatial shape, e.g. ``"reconstruction"`` (AIR) or
        ``"probability"``; shown as Image layers by the viewer.
    """

    labels: np.ndarray
    objects: Mapping[int, ObjectMeta] = field(default_factory=dict)
    source: str = "manual"
    model_version: int | None = None
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of objects."""
        return len(self.objects)

    def with_version(self, model_version: int | None) -> Prediction:
        """Return a copy whose prediction and objects carry ``model_version``."""
        objects = {k: replace(v, model_version=model_version) for k, v in self.objects.items()}
        return replace(self, objects=objects, model_version=model_version)


@dataclass(frozen=True)
class Progress:
    """One progress report of a long computation (prediction, training, fitting).

    ``step`` counts from 1 to ``total`` (``total`` may be 0 when unknown). ``loss`` and
    ``metrics`` are filled by training loops and shown in the live plot.
    """

    step: int
    total: int
    message: str = ""
    loss: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Completed fraction in [0, 1] (0 when the total is unknown)."""
        return min(1.0, self.step / self.total) if self.total else 0.0


@dataclass(frozen=True)
class Sample:
    """One training / evaluation item built from the store or from a folder.

    Parameters
    ----------
    image : np.ndarray
        Grey image, shape ``(Y, X)`` or ``(Z, Y, X)``, any real dtype.
    labels : np.ndarray or None
        Instance label map of the same shape, or None when the image is unannotated.
    points : np.ndarray or None
        ``(N, ndim)`` object centres in pixels (row, col[, ...]), or None.
    name : str
        Image name, for logs and reports.
    weight : float
        Relative weight of the annotation (1 for user corrections, lower for pseudo-labels).
    """

    image: np.ndarray
    labels: np.ndarray | None = None
    points: np.ndarray | None = None
    name: str = ""
    weight: float = 1.0


@dataclass(frozen=True)
class FitResult:
    """What a fitting / training generator returns.

    Parameters
    ----------
    params : Mapping[str, Any]
        The (JSON-serialisable) parameters the fitted model predicts with.
    metrics : Mapping[str, float]
        Scores measured at the end of fitting (e.g. ``"ap50"`` on the training images and
        ``"val_ap50"`` on held-out ones).
    data_used : tuple of str
        Names of the samples fitted on.
    history : tuple of Progress
        The progress reports of the run (loss curve).
    """

    params: Mapping[str, Any]
    metrics: Mapping[str, float] = field(default_factory=dict)
    data_used: tuple[str, ...] = ()
    history: tuple[Progress, ...] = ()
