"""Conversions between masks, polygons, boxes, centres and run-length encodings.

Coordinates are napari's ``(row, col)`` (``(plane, row, col)`` in 3D), in pixels, with integer
coordinates at pixel centres. Outlines from :func:`mask_to_polygon` run half-way between object
and background pixels (the level-0.5 contour of :func:`skimage.measure.find_contours`, traced with
OpenCV's ``findContours``: exactly on a half-pixel grid below 0.5 px of simplification tolerance,
else through the boundary pixels' centres and moved half a pixel outwards), so rasterising them
(pixels whose centre lies inside) gives back the mask.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon

from .contours import EXACT_BELOW, mask_to_polygon, outlines, polygons_from_labels, run_sums

__all__ = [
    "EXACT_BELOW",
    "areas",
    "bounding_boxes",
    "centres",
    "crop_box",
    "decode_mask",
    "dilate",
    "distance_to_background",
    "encode_mask",
    "fill_holes",
    "gaussian",
    "labels_from_polygons",
    "mask_to_polygon",
    "open_mask",
    "outlines",
    "polygons_from_labels",
    "rasterize_polygon",
]


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
    counts, sums = run_sums(labels)
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
