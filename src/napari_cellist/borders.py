"""Objects cut by the image border: mirror the image outwards, segment, crop back.

A nucleus cut in half by the field of view looks like nothing a model has seen whole; mirrored
about the border it becomes a plausible whole object, is found, and is then cropped back to its
visible part. Models call :func:`mirror_border` before and :func:`crop_labels` after
segmentation (training can mirror its annotations the same way, so both see the same thing).
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import relabel_sequential


def mirror_width(diameter: float, fraction: float, shape: tuple[int, ...]) -> int:
    """Pixels to mirror: ``fraction`` of the object ``diameter`` (px), at most one less than the
    shorter of the (Y, X) sides ``shape`` (reflection needs that), 0 when off."""
    if fraction <= 0 or not np.isfinite(diameter) or diameter <= 0:
        return 0
    return int(max(0, min(round(fraction * diameter), min(shape) - 1)))


def mirror_border(array: np.ndarray, width: int, yx_axes: tuple[int, int] = (-2, -1)) -> np.ndarray:
    """Reflect ``array`` outwards by ``width`` pixels along its two ``yx_axes`` (other axes, such
    as Z or channels, are left alone). Label maps mirror with their objects' ids."""
    if width <= 0:
        return array
    pad = [(0, 0)] * array.ndim
    for axis in yx_axes:
        pad[axis] = (width, width)
    return np.pad(array, pad, mode="reflect")


def crop_border(array: np.ndarray, width: int, yx_axes: tuple[int, int] = (-2, -1)) -> np.ndarray:
    """Undo :func:`mirror_border`: the central part of ``array`` (a contiguous copy)."""
    if width <= 0:
        return array
    index = [slice(None)] * array.ndim
    for axis in yx_axes:
        index[axis] = slice(width, array.shape[axis] - width)
    return np.ascontiguousarray(array[tuple(index)])


def crop_labels(labels: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop a label map ``(..., Y, X)`` segmented on a mirrored image and renumber its objects.

    Returns the int32 label map with objects 1..N (objects lying entirely in the mirrored margin
    are dropped) and ``(N,)`` the old id of each new one, to carry per-object scores along.
    """
    cropped = crop_border(labels, width)
    relabelled, _, inverse = relabel_sequential(cropped)
    old_ids = np.asarray(inverse.out_values)[np.asarray(inverse.in_values) > 0]
    return relabelled.astype(np.int32), old_ids.astype(np.int64)
