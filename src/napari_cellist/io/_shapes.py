"""Per-object shapes for the exporters: boxes, outline polygons, COCO polygons and RLE.

See :mod:`.exporters` for the coordinate conventions (``corner_xy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..geometry import polygons_from_labels
from ..types import ObjectMeta
from .readers import as_label_map

Objects = Mapping[int, ObjectMeta] | None


def label_map_2d(labels: np.ndarray) -> np.ndarray:
    """int32 ``(Y, X)`` label map (singleton axes dropped) or a ValueError."""
    labels = as_label_map(np.squeeze(np.asarray(labels)) if np.ndim(labels) > 2 else labels)
    if labels.ndim != 2:
        raise ValueError(
            f"This export needs a 2D (Y, X) label map, got shape {labels.shape}; export a 3D "
            "label map plane by plane."
        )
    return labels


def object_ids(labels: np.ndarray) -> list[int]:
    """Ids present in ``labels``, ascending."""
    return [i for i, s in enumerate(ndi.find_objects(labels), start=1) if s is not None]


def object_meta(objects: Objects, label_id: int) -> ObjectMeta:
    """The object's metadata, or defaults (class ``"object"``, score 1, ``"manual"``)."""
    meta = objects.get(int(label_id)) if objects else None
    return meta if meta is not None else ObjectMeta(int(label_id))


def boxes_xywh(labels: np.ndarray) -> dict[int, tuple[int, int, int, int, int]]:
    """``{id: (x, y, width, height, area)}``."""
    areas = np.bincount(labels.ravel())
    boxes = {}
    for label_id, slices in enumerate(ndi.find_objects(labels), start=1):
        if slices is None:
            continue
        rows, cols = slices
        boxes[label_id] = (
            cols.start,
            rows.start,
            cols.stop - cols.start,
            rows.stop - rows.start,
            int(areas[label_id]),
        )
    return boxes


def outline_polygons(labels: np.ndarray, tolerance: float) -> dict[int, np.ndarray]:
    """``(row, col)`` polygon per object; objects too small for an outline get their box."""
    polygons = polygons_from_labels(labels, tolerance)
    for label_id, (x, y, w, h, _) in boxes_xywh(labels).items():
        if label_id not in polygons:
            r0, c0, r1, c1 = y - 0.5, x - 0.5, y + h - 0.5, x + w - 0.5
            polygons[label_id] = np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]])
    return dict(sorted(polygons.items()))


def corner_xy(poly: np.ndarray) -> np.ndarray:
    """``(row, col)`` with centre-at-integer pixels -> ``(x, y)`` with corner-at-integer."""
    return np.asarray(poly, float)[:, ::-1] + 0.5


def coco_polygons(labels: np.ndarray, tolerance: float) -> dict[int, list[list[float]]]:
    return {
        k: [np.round(corner_xy(p), 2).ravel().tolist()]
        for k, p in outline_polygons(labels, tolerance).items()
    }


def coco_rles(labels: np.ndarray) -> dict[int, dict[str, Any]]:
    """Compressed COCO RLE per object, from one sort of the column-major pixel order."""
    from pycocotools import mask as mask_utils

    height, width = labels.shape
    flat = labels.ravel(order="F")
    if not flat.any():
        return {}
    order = np.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    starts = np.searchsorted(sorted_ids, np.arange(sorted_ids[-1] + 2))
    rles = {}
    for label_id in object_ids(labels):
        pixels = order[starts[label_id] : starts[label_id + 1]]
        breaks = np.flatnonzero(np.diff(pixels) != 1) + 1
        run_starts = pixels[np.r_[0, breaks]]
        run_ends = pixels[np.r_[breaks - 1, len(pixels) - 1]] + 1
        bounds = np.column_stack([run_starts, run_ends]).ravel()
        counts = np.diff(np.r_[0, bounds, height * width]).tolist()
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        rles[label_id] = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    return rles
