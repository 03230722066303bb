"""Conversions between masks, polygons, boxes, centres and run-length encodings.

Coordinates are napari's ``(row, col)`` (``(plane, row, col)`` in 3D), in pixels, with integer
coordinates at pixel centres. Outlines from :func:`mask_to_polygon` run half-way between object
and background pixels (:func:`skimage.measure.find_contours` at level 0.5), so rasterising them
(pixels whose centre lies inside) gives back the mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon
from skimage.measure import approximate_polygon, find_contours


def mask_to_polygon(mask: np.ndarray, tolerance: float = 1.0) -> np.ndarray:
    """Outline of the largest connected part of a 2D mask.

    Parameters
    ----------
    mask : np.ndarray
        bool ``(Y, X)``.
    tolerance : float
        Douglas-Peucker simplification tolerance in pixels (0 keeps every contour vertex).

    Returns
    -------
    np.ndarray
        float ``(N, 2)`` vertices ``(row, col)``, not closed (first != last); ``(0, 2)`` for an
        empty mask.
    """
    padded = np.pad(np.asarray(mask, bool), 1)
    contours = find_contours(padded.astype(np.float32), 0.5)
    if not contours:
        return np.zeros((0, 2))
    contour = max(contours, key=len) - 1.0
    if tolerance > 0:
        contour = approximate_polygon(contour, tolerance)
    if len(contour) > 1 and np.allclose(contour[0], contour[-1]):
        contour = contour[:-1]
    return contour


def polygons_from_labels(
    labels: np.ndarray, tolerance: float = 1.0, ids: Iterable[int] | None = None
) -> dict[int, np.ndarray]:
    """One polygon per object of a 2D label map.

    Parameters
    ----------
    labels : np.ndarray
        int ``(Y, X)`` label map.
    tolerance : float
        Simplification tolerance in pixels.
    ids : iterable of int, optional
        Restrict to these ids (default: all).

    Returns
    -------
    dict
        ``{label_id: (N, 2) vertices (row, col)}`` in image coordinates; objects whose outline
        has fewer than 3 vertices are left out.
    """
    if labels.ndim != 2:
        raise ValueError(f"Polygons need a 2D label map, got shape {labels.shape}.")
    wanted = None if ids is None else set(int(i) for i in ids)
    polygons: dict[int, np.ndarray] = {}
    for index, slc in enumerate(ndi.find_objects(labels), start=1):
        if slc is None or (wanted is not None and index not in wanted):
            continue
        crop = labels[slc] == index
        poly = mask_to_polygon(crop, tolerance)
        if len(poly) >= 3:
            polygons[index] = poly + np.array([slc[0].start, slc[1].start])
    return polygons


def rasterize_polygon(vertices: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool mask ``shape`` of the pixels inside (or on) a polygon of ``(row, col)`` vertices."""
    vertices = np.asarray(vertices, float)
    mask = np.zeros(shape, bool)
    if len(vertices) < 3:
        return mask
    rr, cc = draw_polygon(vertices[:, 0], vertices[:, 1], shape)
    mask[rr, cc] = True
    return mask


def labels_from_polygons(polygons: Mapping[int, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """int32 label map of ``shape`` painting each polygon with its id (later ids on top)."""
    labels = np.zeros(shape, np.int32)
    for label_id, vertices in polygons.items():
        labels[rasterize_polygon(vertices, shape)] = int(label_id)
    return labels


def bounding_boxes(labels: np.ndarray) -> dict[int, tuple[int, ...]]:
    """``{label_id: box}`` with half-open ``(min..., max...)`` boxes (see :mod:`types`)."""
    boxes = {}
    for index, slc in enumerate(ndi.find_objects(labels), start=1):
        if slc is not None:
            boxes[index] = tuple(s.start for s in slc) + tuple(s.stop for s in slc)
    return boxes


def centres(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of mass of the objects.

    Returns
    -------
    ids : np.ndarray
        int ``(N,)`` label ids, ascending.
    points : np.ndarray
        float ``(N, ndim)`` centres ``(row, col)`` / ``(plane, row, col)`` in pixels.
    """
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return ids.astype(np.int64), np.zeros((0, labels.ndim))
    points = np.asarray(ndi.center_of_mass(np.ones(labels.shape), labels, ids), float)
    return ids.astype(np.int64), points.reshape(len(ids), labels.ndim)


def areas(labels: np.ndarray) -> dict[int, int]:
    """``{label_id: number of pixels}`` for every object."""
    counts = np.bincount(labels.ravel().astype(np.int64))
    return {int(i): int(c) for i, c in enumerate(counts) if i > 0 and c > 0}


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a bool mask ``(Y, X)``; a ``(Z, Y, X)`` mask plane by plane (a 3D fill
    would also close tunnels between planes)."""
    if mask.ndim == 3:
        return np.stack([ndi.binary_fill_holes(plane) for plane in mask])
    return ndi.binary_fill_holes(mask)


def encode_mask(mask: np.ndarray) -> dict:
    """COCO run-length encoding of a 2D (or 3D, planes stacked on rows) bool mask.

    Returns
    -------
    dict
        ``{"size": [rows, cols], "counts": str, "shape": [...]}``; ``shape`` is the original
        mask shape so that :func:`decode_mask` restores 3D masks.
    """
    from pycocotools import mask as mask_utils

    mask = np.asarray(mask, bool)
    flat = mask.reshape(-1, mask.shape[-1])
    rle = mask_utils.encode(np.asfortranarray(flat.astype(np.uint8)))
    return {
        "size": [int(s) for s in rle["size"]],
        "counts": rle["counts"].decode("ascii"),
        "shape": [int(s) for s in mask.shape],
    }


def decode_mask(rle: Mapping) -> np.ndarray:
    """Inverse of :func:`encode_mask`: bool array of ``rle["shape"]`` (or ``rle["size"]``)."""
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    coded = {
        "size": list(rle["size"]),
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }
    flat = mask_utils.decode(coded).astype(bool)
    return flat.reshape(tuple(rle.get("shape", rle["size"])))


def crop_box(mask_box: tuple[int, ...]) -> tuple[slice, ...]:
    """Slices that cut a half-open box out of an array."""
    ndim = len(mask_box) // 2
    return tuple(slice(mask_box[i], mask_box[i + ndim]) for i in range(ndim))
