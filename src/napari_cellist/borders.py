"""Objects cut by the image border: mirror the image outwards, segment, crop back.

A nucleus cut in half by the field of view looks like nothing a model has seen whole; mirrored
about the border it becomes a plausible whole object, is found, and is then cropped back to its
visible part. Models call :func:`mirror_border` before and :func:`crop_labels` after
segmentation (training can mirror its annotations the same way, so both see the same thing).
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label as connected_components
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


def mirror_labels(labels: np.ndarray, width: int) -> np.ndarray:
    """A 2D ``(Y, X)`` label map mirrored like its image (:func:`mirror_border`), where the mirror
    image of an object is an object of its own (a new id) unless it touches the object.

    An object cut by the border joins its mirror image into one whole object, as the model sees it
    in the mirrored image. An object near the border but not cut by it has its mirror image in the
    margin, a separate object in the mirrored image: with the same id the two would be one
    annotation centred in the gap between them.
    """
    mirrored = mirror_border(np.asarray(labels), width)
    if width <= 0 or not mirrored.any():
        return mirrored
    parts = connected_components(mirrored, background=0, connectivity=1)  # per id, connected
    inside = np.unique(crop_border(parts, width))
    copies = np.setdiff1d(np.unique(parts), inside)
    copies = copies[copies > 0]
    if not len(copies):
        return mirrored
    new_ids = np.zeros(int(parts.max()) + 1, np.int64)
    new_ids[copies] = int(mirrored.max()) + np.arange(1, len(copies) + 1)
    out = mirrored.astype(np.int64 if new_ids.max() > np.iinfo(np.int32).max else np.int32)
    is_copy = new_ids[parts] > 0
    out[is_copy] = new_ids[parts][is_copy]
    return out


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
