"""Conversions between masks, polygons, boxes, centres and run-length encodings.

Coordinates are napari's ``(row, col)`` (``(plane, row, col)`` in 3D), in pixels, with integer
coordinates at pixel centres. Outlines from :func:`mask_to_polygon` run half-way between object
and background pixels (the level-0.5 contour of :func:`skimage.measure.find_contours`, traced with
OpenCV's ``findContours``), so rasterising them (pixels whose centre lies inside) gives back the
mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon

# Outlines are traced by OpenCV on a half-pixel grid: fine pixel (2r, 2c) is pixel (r, c), the
# fine pixels between two pixels belong to the object when either pixel does, and the fine pixel
# between four pixels when at least two of them do. The boundary of that fine mask runs through
# the mid-points between object and background pixels: the level-0.5 contour of marching squares
# (skimage.measure.find_contours), traced at OpenCV's speed.
_HALF_PIXEL = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])


def _fine_grid(mask: np.ndarray) -> np.ndarray:
    """uint8 ``(2Y - 1, 2X - 1)`` half-pixel grid mask (0/1) of a 0/1 uint8 ``(Y, X)`` mask."""
    rows, cols = mask.shape
    # bilinear sampling at half-pixel steps: mid-points of edges get 4 * 1/2, of cells 4 * k/4
    up = cv2.warpAffine(
        mask * np.uint8(4),
        _HALF_PIXEL,
        (2 * cols - 1, 2 * rows - 1),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
    )
    return cv2.threshold(up, 1, 1, cv2.THRESH_BINARY)[1]


def _trace(fine: np.ndarray, tolerance: float) -> np.ndarray | None:
    """Outer contour ``(K, 1, 2)`` (x, y) of the largest part (by area) of a fine-grid mask,
    simplified (Douglas-Peucker, ``tolerance`` in pixels); None for an empty mask."""
    contours, _ = cv2.findContours(fine, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    outline = contours[0] if len(contours) == 1 else max(contours, key=cv2.contourArea)
    return cv2.approxPolyDP(outline, 2.0 * tolerance, True) if tolerance > 0 else outline


def _to_rows_cols(contour: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
    """Fine-grid ``(K, 1, 2)`` x/y contour -> ``(K, 2)`` (row, col) pixels, as find_contours turns."""
    return contour[::-1, 0, ::-1] * 0.5 + np.asarray(offset, float)


def mask_to_polygon(mask: np.ndarray, tolerance: float = 1.0) -> np.ndarray:
    """Outline of the largest connected part of a 2D mask.

    The outline runs half-way between object and background pixels (the level-0.5 contour),
    traced with OpenCV on a half-pixel grid.

    Parameters
    ----------
    mask : np.ndarray
        bool ``(Y, X)``.
    tolerance : float
        Douglas-Peucker simplification tolerance in pixels (0 keeps every corner of the contour;
        straight runs of the contour are always merged).

    Returns
    -------
    np.ndarray
        float ``(N, 2)`` vertices ``(row, col)``, not closed (first != last); ``(0, 2)`` for an
        empty mask.
    """
    padded = np.pad(np.asarray(mask, bool), 1).view(np.uint8)
    outline = _trace(_fine_grid(padded), tolerance)
    return np.zeros((0, 2)) if outline is None else _to_rows_cols(outline, (-1.0, -1.0))


def polygons_from_labels(
    labels: np.ndarray, tolerance: float = 1.0, ids: Iterable[int] | None = None
) -> dict[int, np.ndarray]:
    """One polygon per object of a 2D label map (the outline of its largest part).

    Each object is traced on its own bounding-box crop (:func:`scipy.ndimage.find_objects`), so
    the cost is one OpenCV ``findContours`` per object on four times its box.

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
        ``{label_id: (N, 2) vertices (row, col)}`` in image coordinates, ascending ids;
        objects whose outline has fewer than 3 vertices are left out.
    """
    if labels.ndim != 2:
        raise ValueError(f"Polygons need a 2D label map, got shape {labels.shape}.")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"Polygons need an integer label map, got dtype {labels.dtype}.")
    polygons, _ = _trace_objects(labels, tolerance, ids)
    return polygons


def outlines(
    labels: np.ndarray, tolerance: float = 1.0
) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]:
    """Polygons and centres of every object of a 2D label map in one pass over the objects.

    Returns
    -------
    polygons : dict
        As :func:`polygons_from_labels`.
    ids : np.ndarray
        int64 ``(N,)`` ids of all objects, ascending (also those too small for a polygon).
    points : np.ndarray
        float ``(N, 2)`` centres of mass ``(row, col)``, as :func:`centres`.
    """
    if labels.ndim != 2:
        raise ValueError(f"Outlines need a 2D label map, got shape {labels.shape}.")
    polygons, found = _trace_objects(np.asarray(labels), tolerance, None)
    ids = np.array(sorted(found), np.int64)
    points = np.array([found[i] for i in ids.tolist()], float).reshape(len(ids), 2)
    return polygons, ids, points


def _trace_objects(
    labels: np.ndarray, tolerance: float, ids: Iterable[int] | None
) -> tuple[dict[int, np.ndarray], dict[int, tuple[float, float]]]:
    """``({id: polygon}, {id: centre (row, col)})``, each object on its bounding-box crop."""
    if labels.dtype.kind not in "iu":
        raise ValueError(f"Polygons need an integer label map, got dtype {labels.dtype}.")
    boxes = ndi.find_objects(labels)
    wanted = (
        [i for i, s in enumerate(boxes, start=1) if s is not None]
        if ids is None
        else sorted(int(i) for i in ids if 0 < int(i) <= len(boxes) and boxes[int(i) - 1])
    )
    polygons, points = {}, {}
    for label_id in wanted:
        rows, cols = boxes[label_id - 1]
        crop = (labels[rows, cols] == label_id).view(np.uint8)
        moments = cv2.moments(crop, binaryImage=True)
        points[label_id] = (
            rows.start + moments["m01"] / moments["m00"],
            cols.start + moments["m10"] / moments["m00"],
        )
        padded = cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        outline = _trace(_fine_grid(padded), tolerance)
        if outline is not None and len(outline) >= 3:
            polygons[label_id] = _to_rows_cols(outline, (rows.start - 1.0, cols.start - 1.0))
    return polygons, points


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
    labels = np.asarray(labels)
    top = int(labels.max()) if labels.size else 0
    counts = np.zeros(top + 1)
    sums = np.zeros((labels.ndim, top + 1))
    # slabs of ~4 M pixels along the first axis: bounded temporaries whatever the map's size
    step = max(1, (1 << 22) // max(1, labels[0].size))
    for start in range(0, labels.shape[0], step):
        slab = labels[start : start + step]
        flat = slab.ravel().astype(np.intp, copy=False)
        counts += np.bincount(flat, minlength=top + 1)
        for axis, size in enumerate(slab.shape):
            shape = [1] * slab.ndim
            shape[axis] = size
            offset = start if axis == 0 else 0
            coords = np.broadcast_to(
                np.arange(offset, offset + size, dtype=float).reshape(shape), slab.shape
            )
            sums[axis] += np.bincount(flat, weights=coords.ravel(), minlength=top + 1)
    counts[:1] = 0
    ids = np.flatnonzero(counts)
    if len(ids) == 0:
        return ids.astype(np.int64), np.zeros((0, labels.ndim))
    return ids.astype(np.int64), (sums[:, ids] / counts[ids]).T


def areas(labels: np.ndarray) -> dict[int, int]:
    """``{label_id: number of pixels}`` for every object."""
    counts = np.bincount(labels.ravel().astype(np.int64))
    return {int(i): int(c) for i, c in enumerate(counts) if i > 0 and c > 0}


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a bool mask ``(Y, X)``; a ``(Z, Y, X)`` mask plane by plane (a 3D fill
    would also close tunnels between planes). Same result as
    :func:`scipy.ndimage.binary_fill_holes`; 2D by an OpenCV flood fill of the background from
    outside the image."""
    mask = np.asarray(mask, bool)
    if mask.ndim == 3:
        return np.stack([fill_holes(plane) for plane in mask])
    if mask.ndim != 2:
        return ndi.binary_fill_holes(mask)
    outside = cv2.copyMakeBorder(mask.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    # floodFill needs a mask 2 px larger; 4-connected like binary_fill_holes' default structure
    cv2.floodFill(outside, None, (0, 0), 1, flags=4)
    return mask | (outside[1:-1, 1:-1] == 0)


def open_mask(mask: np.ndarray) -> np.ndarray:
    """Binary opening by the cross (4-/6-connected) element, pixels outside the image counting
    as background: :func:`scipy.ndimage.binary_opening` with
    ``generate_binary_structure(ndim, 1)``; 2D by OpenCV."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        return ndi.binary_opening(mask, ndi.generate_binary_structure(mask.ndim, 1))
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    opened = cv2.morphologyEx(
        mask.view(np.uint8), cv2.MORPH_OPEN, cross, borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    return opened.astype(bool)


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing (``sigma`` pixels, mirrored borders, truncated at 4 sigma): the values
    of :func:`scipy.ndimage.gaussian_filter`, by OpenCV for 2D float32 images (several times
    faster); other images by scipy."""
    if sigma <= 0:
        return image
    if image.ndim != 2 or image.dtype != np.float32:
        return ndi.gaussian_filter(image, sigma)
    size = 2 * int(4.0 * sigma + 0.5) + 1
    return cv2.GaussianBlur(image, (size, size), sigma, borderType=cv2.BORDER_REFLECT)


def distance_to_background(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels) of each pixel of a bool mask to the nearest background pixel
    (0 on the background); float32 of the mask's shape. Same values as
    :func:`scipy.ndimage.distance_transform_edt` (pixels outside the image are not background);
    2D by OpenCV's exact transform, several times faster."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        return ndi.distance_transform_edt(mask).astype(np.float32)
    return cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``iterations`` dilations of a bool mask by the cross (4-/6-connected) element: the pixels
    within a city-block distance ``iterations`` of the mask. Same as
    :func:`scipy.ndimage.binary_dilation` ``(mask, iterations=...)``; 2D in one OpenCV distance
    transform, whatever the number of iterations."""
    mask = np.asarray(mask, bool)
    if iterations <= 0:
        return mask.copy()
    if mask.ndim != 2:
        return ndi.binary_dilation(mask, iterations=iterations)
    if not mask.any():
        return mask.copy()
    outside = cv2.distanceTransform((~mask).view(np.uint8), cv2.DIST_L1, 3)
    return outside <= iterations


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
