"""Export label maps as COCO JSON, GeoJSON, polygon CSV, ImageJ ROI sets and count tables.

Coordinate conventions
----------------------
Our polygons (:func:`~napari_cellist.geometry.polygons_from_labels`) are ``(row, col)`` with
pixel *centres* at integer coordinates (napari's convention); their vertices lie on pixel edges,
e.g. ``col + 0.5``. COCO, GeoJSON (QuPath) and ImageJ put pixel ``(row, col)``'s top-left
*corner* at ``(x=col, y=row)``, so those exports write ``x = col + 0.5, y = row + 0.5``. The
polygon CSV keeps napari's ``(y, x) = (row, col)`` so that it loads back as a Shapes layer.

All exports are 2D (export a 3D label map plane by plane) and written atomically.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .. import __version__
from ..geometry import polygons_from_labels
from ..types import DEFAULT_CLASS, ObjectMeta
from .readers import as_label_map
from .writers import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

Objects = Mapping[int, ObjectMeta] | None
CocoItem = tuple[str, np.ndarray, Objects]
#: Polygon simplification (pixels) of exports: drops the staircase vertices of pixel outlines
#: but keeps the shape (rasterised back, IoU >= 0.99 per object on the DSB2018 nuclei).
EXPORT_TOLERANCE = 0.25


def export_coco(
    path: str | os.PathLike,
    items: Sequence[CocoItem],
    use_rle: bool = False,
    tolerance: float = EXPORT_TOLERANCE,
) -> Path:
    """Write instance annotations of several images as one COCO JSON file.

    Parameters
    ----------
    path : str or path-like
        Target ``.json`` file.
    items : sequence of (str, np.ndarray, mapping or None)
        ``(image file name, 2D label map (Y, X), {label_id: ObjectMeta} or None)`` per image.
        Class names become ``categories`` (sorted, ids from 1); objects without metadata get
        class ``"object"`` and score 1.
    use_rle : bool
        Segmentations as compressed RLE (``{"size": [h, w], "counts": str}``, exact) instead of
        polygons ``[[x0, y0, x1, y1, ...]]``.
    tolerance : float
        Polygon simplification in pixels.

    Returns
    -------
    Path
        The file written. ``bbox`` is ``[x, y, width, height]`` and ``area`` the pixel count.
    """
    labelled = [(name, _label_map_2d(labels), objects) for name, labels, objects in items]
    classes = sorted({_meta(o, i).class_name for _, lab, o in labelled for i in _ids(lab)})
    category_ids = {name: k for k, name in enumerate(classes or [DEFAULT_CLASS], start=1)}
    images, annotations = [], []
    for image_id, (name, labels, objects) in enumerate(labelled, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": str(name),
                "height": int(labels.shape[0]),
                "width": int(labels.shape[1]),
            }
        )
        segmentations = _rles(labels) if use_rle else _coco_polygons(labels, tolerance)
        for label_id, box in _boxes(labels).items():
            meta = _meta(objects, label_id)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_ids[meta.class_name],
                    "segmentation": segmentations[label_id],
                    "area": int(box[4]),
                    "bbox": [int(v) for v in box[:4]],
                    "iscrowd": 0,
                    "score": float(meta.score),
                    "label_id": int(label_id),
                    "source": meta.source,
                }
            )
    coco = {
        "info": {
            "description": "napari-cellist export",
            "version": __version__,
            "date_created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": k, "name": n, "supercategory": "cell"} for n, k in category_ids.items()
        ],
    }
    logger.info("COCO export: %d images, %d objects -> %s", len(images), len(annotations), path)
    return atomic_write_text(path, json.dumps(coco))


def export_geojson(
    path: str | os.PathLike,
    labels: np.ndarray,
    objects: Objects = None,
    tolerance: float = EXPORT_TOLERANCE,
) -> Path:
    """Write one GeoJSON Polygon Feature per object (QuPath-compatible FeatureCollection).

    Coordinates are ``[x, y]`` image pixels (see the module docstring), rings closed. Each
    feature's ``properties`` hold ``id``, ``class``, ``score``, ``source`` (and QuPath's
    ``objectType`` / ``classification``).
    """
    features = []
    for label_id, poly in _polygons(_label_map_2d(labels), tolerance).items():
        meta = _meta(objects, label_id)
        ring = _corner_xy(np.vstack([poly, poly[:1]])).tolist()
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "id": int(label_id),
                    "class": meta.class_name,
                    "score": float(meta.score),
                    "source": meta.source,
                    "objectType": "detection",
                    "classification": {"name": meta.class_name},
                },
            }
        )
    collection = {"type": "FeatureCollection", "features": features}
    return atomic_write_text(path, json.dumps(collection))


def export_polygons_csv(
    path: str | os.PathLike,
    labels: np.ndarray,
    objects: Objects = None,
    tolerance: float = EXPORT_TOLERANCE,
) -> Path:
    """Write polygon vertices, one row per vertex: ``id, class, vertex_index, y, x``.

    ``y, x`` are napari ``(row, col)`` coordinates (pixel centres at integers), so the file
    describes the same outlines as the Shapes layer; polygons are not closed.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "class", "vertex_index", "y", "x"])
    for label_id, poly in _polygons(_label_map_2d(labels), tolerance).items():
        class_name = _meta(objects, label_id).class_name
        for index, (row, col) in enumerate(poly):
            writer.writerow([label_id, class_name, index, f"{row:.6g}", f"{col:.6g}"])
    return atomic_write_text(path, buffer.getvalue())


def export_imagej_rois(
    path_zip: str | os.PathLike, labels: np.ndarray, tolerance: float = EXPORT_TOLERANCE
) -> Path:
    """Write one ImageJ polygon ROI per object into a ROI-Manager ``.zip``.

    ROIs are named by zero-padded label id (``"0007"``) and use sub-pixel coordinates.
    """
    import roifile

    polygons = _polygons(_label_map_2d(labels), tolerance)
    width = max(4, len(str(max(polygons, default=0))))
    rois = []
    for label_id, poly in polygons.items():
        roi = roifile.ImagejRoi.frompoints(_corner_xy(poly), name=f"{label_id:0{width}d}")
        roi.roitype = roifile.ROI_TYPE.POLYGON
        rois.append(roi)
    if not rois:
        raise ValueError("The label map has no objects; an ImageJ ROI set cannot be empty.")
    with atomic_path(path_zip) as tmp:
        roifile.roiwrite(tmp, rois, mode="w")
    return Path(path_zip)


def count_row(
    image_name: str,
    labels: np.ndarray,
    objects: Objects = None,
    pixel_area: float | None = None,
) -> dict[str, Any]:
    """One row of a count table for :func:`export_counts`.

    Returns
    -------
    dict
        ``image``, ``count``, ``count_<class>`` per class, ``mean_area`` (pixels) and
        ``mean_area_um2`` when ``pixel_area`` (µm² per pixel) is given.
    """
    labels = as_label_map(labels)
    counts = np.bincount(labels.ravel())
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    row: dict[str, Any] = {"image": image_name, "count": int(len(ids))}
    for label_id in ids:
        key = f"count_{_meta(objects, int(label_id)).class_name}"
        row[key] = row.get(key, 0) + 1
    mean_area = float(counts[ids].mean()) if len(ids) else 0.0
    row["mean_area"] = round(mean_area, 3)
    if pixel_area is not None:
        row["mean_area_um2"] = round(mean_area * pixel_area, 6)
    return row


def export_counts(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write a count table as CSV or JSON (chosen by the extension of ``path``).

    Parameters
    ----------
    path : str or path-like
        ``.csv``: one line per row, columns in order of first appearance (``image``, ``count``
        first), nested mappings flattened as ``key_subkey``, missing values empty.
        ``.json``: a list of the rows as given.
    rows : sequence of mapping
        Per image: ``image``, ``count``, per-class counts, ``mean_area`` (see :func:`count_row`).
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return atomic_write_text(
            path, json.dumps([dict(r) for r in rows], indent=1, default=_json_default)
        )
    if suffix != ".csv":
        raise ValueError(f"Count tables are written as .csv or .json, not '{suffix}' ({path}).")
    flat = [_flatten(r) for r in rows]
    columns = list(dict.fromkeys(["image", "count", *(k for r in flat for k in r)]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return atomic_write_text(path, buffer.getvalue())


def _flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = (
                _json_default(value) if isinstance(value, np.generic) else value
            )
    return flat


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _label_map_2d(labels: np.ndarray) -> np.ndarray:
    labels = as_label_map(np.squeeze(np.asarray(labels)) if np.ndim(labels) > 2 else labels)
    if labels.ndim != 2:
        raise ValueError(
            f"This export needs a 2D (Y, X) label map, got shape {labels.shape}; export a 3D "
            "label map plane by plane."
        )
    return labels


def _ids(labels: np.ndarray) -> list[int]:
    return [i for i, s in enumerate(ndi.find_objects(labels), start=1) if s is not None]


def _meta(objects: Objects, label_id: int) -> ObjectMeta:
    meta = objects.get(int(label_id)) if objects else None
    return meta if meta is not None else ObjectMeta(int(label_id))


def _boxes(labels: np.ndarray) -> dict[int, tuple[int, int, int, int, int]]:
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


def _polygons(labels: np.ndarray, tolerance: float) -> dict[int, np.ndarray]:
    """``(row, col)`` polygon per object; objects too small for an outline get their box."""
    polygons = polygons_from_labels(labels, tolerance)
    for label_id, (x, y, w, h, _) in _boxes(labels).items():
        if label_id not in polygons:
            r0, c0, r1, c1 = y - 0.5, x - 0.5, y + h - 0.5, x + w - 0.5
            polygons[label_id] = np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]])
    return dict(sorted(polygons.items()))


def _corner_xy(poly: np.ndarray) -> np.ndarray:
    """``(row, col)`` with centre-at-integer pixels -> ``(x, y)`` with corner-at-integer."""
    return np.asarray(poly, float)[:, ::-1] + 0.5


def _coco_polygons(labels: np.ndarray, tolerance: float) -> dict[int, list[list[float]]]:
    return {
        k: [np.round(_corner_xy(p), 2).ravel().tolist()]
        for k, p in _polygons(labels, tolerance).items()
    }


def _rles(labels: np.ndarray) -> dict[int, dict[str, Any]]:
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
    for label_id in _ids(labels):
        pixels = order[starts[label_id] : starts[label_id + 1]]
        breaks = np.flatnonzero(np.diff(pixels) != 1) + 1
        run_starts = pixels[np.r_[0, breaks]]
        run_ends = pixels[np.r_[breaks - 1, len(pixels) - 1]] + 1
        bounds = np.column_stack([run_starts, run_ends]).ravel()
        counts = np.diff(np.r_[0, bounds, height * width]).tolist()
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        rles[label_id] = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    return rles
