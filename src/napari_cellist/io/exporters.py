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

from .. import __version__
from ..types import DEFAULT_CLASS
from ._shapes import (
    Objects,
    boxes_xywh,
    coco_polygons,
    coco_rles,
    corner_xy,
    label_map_2d,
    object_ids,
    object_meta,
    outline_polygons,
)
from .readers import as_label_map
from .writers import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

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
    labelled = [(name, label_map_2d(labels), objects) for name, labels, objects in items]
    classes = sorted(
        {object_meta(o, i).class_name for _, lab, o in labelled for i in object_ids(lab)}
    )
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
        segmentations = coco_rles(labels) if use_rle else coco_polygons(labels, tolerance)
        for label_id, box in boxes_xywh(labels).items():
            meta = object_meta(objects, label_id)
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
    for label_id, poly in outline_polygons(label_map_2d(labels), tolerance).items():
        meta = object_meta(objects, label_id)
        ring = corner_xy(np.vstack([poly, poly[:1]])).tolist()
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
    for label_id, poly in outline_polygons(label_map_2d(labels), tolerance).items():
        class_name = object_meta(objects, label_id).class_name
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

    polygons = outline_polygons(label_map_2d(labels), tolerance)
    width = max(4, len(str(max(polygons, default=0))))
    rois = []
    for label_id, poly in polygons.items():
        roi = roifile.ImagejRoi.frompoints(corner_xy(poly), name=f"{label_id:0{width}d}")
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
        key = f"count_{object_meta(objects, int(label_id)).class_name}"
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
