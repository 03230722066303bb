"""The one place where napari's ``(row, col)`` coordinates become SAM's ``(x, y)``.

napari (and every array in this package) indexes images as ``(row, col)`` = ``(y, x)``;
Segment Anything takes points as ``(x, y)`` and boxes as XYXY, all in pixels of the image it was
given. Everything that hands coordinates to SAM goes through :func:`rc_to_xy`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rc_to_xy(
    coords: np.ndarray | Sequence[Sequence[float]], origin: Sequence[float] = (0, 0)
) -> np.ndarray:
    """Convert ``(N, 2)`` ``(row, col)`` coordinates to SAM's ``(N, 2)`` ``(x, y)``.

    Parameters
    ----------
    coords : array-like
        ``(N, 2)`` float ``(row, col)`` in pixels of the full image (more leading columns, e.g.
        a napari Points layer's ``(plane, row, col)``, are dropped: the last two are used).
    origin : sequence of 2 floats
        ``(row, col)`` of the top-left pixel of the tile SAM sees; subtracted first.

    Returns
    -------
    np.ndarray
        float64 ``(N, 2)`` ``(x, y)`` in pixels of the tile.
    """
    array = np.atleast_2d(np.asarray(coords, dtype=np.float64))
    if array.size == 0:
        return np.zeros((0, 2))
    rc = array[:, -2:] - np.asarray(origin, dtype=np.float64)
    return rc[:, ::-1].copy()


def box_to_xyxy(box: Sequence[float], origin: Sequence[float] = (0, 0)) -> np.ndarray:
    """Convert a half-open ``(min_row, min_col, max_row, max_col)`` box to SAM's XYXY.

    The SAM box runs from the first to the last covered pixel (as SAM's own
    ``batched_mask_to_box``), i.e. ``(min_col, min_row, max_col - 1, max_row - 1)``.

    Parameters
    ----------
    box : sequence of 4 floats
        Half-open box in pixels of the full image (see :mod:`napari_cellist.types`).
    origin : sequence of 2 floats
        ``(row, col)`` of the tile's top-left pixel.

    Returns
    -------
    np.ndarray
        float64 ``(4,)`` ``(x0, y0, x1, y1)`` in pixels of the tile.
    """
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"A 2D box has 4 numbers (min_row, min_col, max_row, max_col), got {box}.")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"Empty box {tuple(box)}: max_row/max_col must exceed min_row/min_col.")
    corners = np.array([[box[0], box[1]], [box[2] - 1, box[3] - 1]])
    return rc_to_xy(corners, origin).reshape(4)


def rectangle_to_box(vertices: np.ndarray) -> tuple[int, int, int, int]:
    """Half-open box of a napari Shapes rectangle given by its ``(4, 2|3)`` vertices.

    Vertices are continuous ``(row, col)`` coordinates; the box covers every pixel whose centre
    lies inside the rectangle (at least one pixel).
    """
    rc = np.asarray(vertices, dtype=np.float64)[:, -2:]
    low = np.ceil(rc.min(axis=0) - 0.5).astype(int)
    high = np.floor(rc.max(axis=0) + 0.5).astype(int)
    high = np.maximum(high, low + 1)
    return int(low[0]), int(low[1]), int(high[0]), int(high[1])
