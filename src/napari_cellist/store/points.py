"""Committed point annotations <-> the JSON of ``commits.points`` (pure NumPy, no database).

Points are object markers in napari's pixel coordinates, ``(row, col)`` or ``(plane, row,
col)``: pixel centres are integers, so a point lies inside an image of spatial shape ``S`` when
``-0.5 <= coordinate <= S - 0.5`` along every axis (the extent napari draws the image with).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_SHOWN = 5  # offending points named in an error message


def check_points(points: Any, shape: Sequence[int]) -> np.ndarray:
    """Validate points against the spatial shape of the committed label map.

    Parameters
    ----------
    points : array-like
        ``(N, ndim)`` coordinates in pixels; an empty array means "no objects marked".
    shape : sequence of int
        Spatial shape of the label map (its ``ndim`` is the points' ``ndim``).

    Returns
    -------
    np.ndarray
        float64 ``(N, ndim)`` copy of the points (``(0, ndim)`` when empty).

    Raises
    ------
    ValueError
        Not numeric, not ``(N, ndim)``, not finite, or outside the image; the message names the
        offending points and what is expected.
    """
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    axes = "(row, col)" if ndim == 2 else "(plane, row, col)"
    raw = np.asarray(points)
    if raw.size == 0:
        return np.zeros((0, ndim), np.float64)
    if raw.dtype.kind not in "iuf":
        raise ValueError(
            f"Points must be numeric {axes} pixel coordinates, got dtype {raw.dtype}; pass the "
            "Points layer's data (an (N, ndim) float array)."
        )
    if raw.ndim != 2 or raw.shape[1] != ndim:
        raise ValueError(
            f"Points must have shape (N, {ndim}), {axes} per point, to match the {ndim}D label "
            f"map of shape {shape}; got shape {raw.shape}."
        )
    array = raw.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise ValueError(
            f"Points {_which(bad)} have NaN or infinite coordinates (points are numbered from 0); "
            "remove them from the Points layer."
        )
    upper = np.asarray(shape, np.float64) - 0.5
    bad = np.flatnonzero(((array < -0.5) | (array > upper)).any(axis=1))
    if bad.size:
        raise ValueError(
            f"Points {_which(bad)} lie outside the image of spatial shape {shape} (first: "
            f"{array[bad[0]].tolist()}); every coordinate must lie in -0.5..size-0.5 of its "
            "axis. Delete or move those points."
        )
    return array


def points_to_json(points: np.ndarray | None) -> list[list[float]] | None:
    """Checked points as the JSON list stored in ``commits.points`` (None stays None = NULL)."""
    return None if points is None else [[float(c) for c in row] for row in points]


def points_from_json(value: Any, ndim: int) -> np.ndarray | None:
    """Inverse of :func:`points_to_json`: float64 ``(N, ndim)``, or None for NULL."""
    return None if value is None else np.asarray(value, np.float64).reshape(-1, ndim)


def _which(indices: np.ndarray) -> str:
    listed = ", ".join(str(int(i)) for i in indices[:_SHOWN])
    more = f" and {indices.size - _SHOWN} more" if indices.size > _SHOWN else ""
    return f"{listed}{more}"
