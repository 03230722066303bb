"""Label maps <-> annotation rows (one per object), and corrections <-> correction rows.

Pure NumPy: nothing here touches the database, so the expensive part of a commit (outlines and
run-length encodings) runs before its transaction starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..geometry import polygons_from_labels
from ..labels import Corrections, diff_label_maps
from ..types import ObjectMeta
from .rle import EncodedObjects, encode_objects, paint_objects
from .schema import Annotation

INT32_MAX = int(np.iinfo(np.int32).max)
POLYGON_TOLERANCE = 1.0
#: Rows per INSERT executemany of a commit (bounds the parameter lists built at once)
INSERT_BATCH = 2000
#: ``annotations`` columns a restore reads (:func:`labels_from_rows`)
RESTORE_COLUMNS = tuple(
    getattr(Annotation, name)
    for name in ("label_id", "rle", "box", "score", "class_name", "source", "model_version_id")
)


def check_labels(labels: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    """Validate a label map against the shape of its image.

    The label map must be integer, 2D or 3D, with ids in ``[0, 2**31 - 1]``, and of the image's
    shape or of the image's shape without its first or last axis (channels / RGB).

    Raises
    ------
    ValueError
        With what is wrong and what is expected.
    """
    array = np.asarray(labels)
    image_shape = tuple(int(s) for s in image_shape)
    if array.dtype.kind not in "iu":
        raise ValueError(
            f"A label map must hold integer object ids, got dtype {array.dtype}; convert a "
            "boolean mask with skimage.measure.label first."
        )
    allowed = {image_shape}
    if len(image_shape) == array.ndim + 1:
        allowed |= {image_shape[1:], image_shape[:-1]}
    if array.ndim not in (2, 3) or array.shape not in allowed:
        raise ValueError(
            f"The label map has shape {array.shape}, but the image has shape {image_shape}; "
            "commit a label map of the image's spatial shape (Y, X) or (Z, Y, X)."
        )
    if array.size and (int(array.min()) < 0 or int(array.max()) > INT32_MAX):
        raise ValueError(f"Label ids must lie in 0..{INT32_MAX}; relabel the map first.")
    return array


def compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber ids to ``1..N`` (ascending order kept) so per-id arrays stay small.

    Returns
    -------
    compact : np.ndarray
        int32 label map with ids ``1..N``.
    ids : np.ndarray
        int64 ``(N + 1,)``: ``ids[k]`` is the original id of compact id ``k`` (``ids[0] = 0``).
    """
    top = int(labels.max(initial=0))
    if top <= 4 * labels.size + 1024:  # a bincount and a lookup table: no sort of the pixels
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=top + 1))
        ids = np.concatenate([[0], present[present != 0]]).astype(np.int64)
        if ids[-1] == len(ids) - 1:  # already 1..N
            return labels.astype(np.int32, copy=False), ids
        lookup = np.zeros(top + 1, np.int32)
        lookup[ids] = np.arange(len(ids), dtype=np.int32)
        return lookup[labels], ids
    present = np.unique(labels)
    ids = np.concatenate([[0], present[present != 0]]).astype(np.int64)
    return np.searchsorted(ids, labels).astype(np.int32), ids


def object_rows(
    labels: np.ndarray,
    objects: Mapping[int, ObjectMeta] | None = None,
    polygons: Mapping[int, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """One ``annotations`` row (as a dict, without image / commit columns) per object.

    Metadata come from ``objects`` (default: a manual object of the default class); 2D outlines
    from ``polygons`` where given, else traced from the mask. Boxes, areas and RLEs of all
    objects come from one vectorised pass (:func:`.rle.encode_objects`); the rows are in
    ascending id order.
    """
    objects = objects or {}
    small, ids = compact(labels)
    found = encode_objects(small)
    label_ids = ids[found.index].tolist()
    outlines = _outlines(small, found, label_ids, polygons) if labels.ndim == 2 else {}
    boxes, areas = found.box.tolist(), found.area.tolist()
    rows = []
    for label_id, box, area, rle in zip(label_ids, boxes, areas, found.rle, strict=True):
        meta = objects.get(label_id) or ObjectMeta(label_id)
        rows.append(
            {
                "label_id": label_id,
                "class_name": str(meta.class_name),
                "polygon": outlines.get(label_id),
                "rle": rle,
                "box": box,
                "area": area,
                "score": float(meta.score),
                "source": str(meta.source),
                "model_version_id": None if meta.model_version is None else int(meta.model_version),
            }
        )
    return rows


def _outlines(
    small: np.ndarray,
    found: EncodedObjects,
    label_ids: list[int],
    polygons: Mapping[int, np.ndarray] | None,
) -> dict[int, list[list[float]]]:
    """Outlines by original id: the given ones, the others traced
    (:func:`napari_cellist.geometry.polygons_from_labels` on the compact map)."""
    given = {int(k): np.asarray(v, float) for k, v in (polygons or {}).items()}
    for label_id, vertices in given.items():
        if vertices.ndim != 2 or vertices.shape[1] != 2:
            raise ValueError(
                f"The polygon of object {label_id} has shape {vertices.shape}; polygons are "
                "(N, 2) arrays of (row, col) vertices."
            )
    missing = [k for k, i in zip(found.index.tolist(), label_ids, strict=True) if i not in given]
    traced = polygons_from_labels(small, POLYGON_TOLERANCE, ids=missing) if missing else {}
    by_index = dict(zip(found.index.tolist(), label_ids, strict=True))
    outlines = {by_index[k]: v.tolist() for k, v in traced.items()}
    outlines.update({k: v.tolist() for k, v in given.items()})
    return outlines


def labels_from_rows(
    shape: Sequence[int], rows: Iterable[Any]
) -> tuple[np.ndarray, dict[int, ObjectMeta]]:
    """Rebuild the int32 label map and metadata from ``annotations`` rows.

    ``rows`` have the attributes ``label_id``, ``rle``, ``box``, ``score``, ``class_name``,
    ``source`` and ``model_version_id`` (ORM objects or Core rows); later rows are painted on
    top of earlier ones. The masks of all rows are decoded together
    (:func:`.rle.paint_objects`).
    """
    labels = np.zeros(tuple(int(s) for s in shape), np.int32)
    objects: dict[int, ObjectMeta] = {}
    ids, boxes, rles = [], [], []
    for row in rows:
        box = tuple(int(b) for b in row.box)
        ids.append(row.label_id)
        boxes.append(box)
        rles.append(row.rle)
        objects[row.label_id] = ObjectMeta(
            label_id=row.label_id,
            score=float(row.score),
            class_name=row.class_name,
            box=box,
            source=row.source,
            model_version=row.model_version_id,
        )
    paint_objects(labels, ids, boxes, rles)
    return labels, objects


def diff(before: np.ndarray, after: np.ndarray) -> Corrections:
    """:func:`napari_cellist.labels.diff_label_maps` on compacted maps, in the original ids."""
    small_before, ids_before = compact(before)
    small_after, ids_after = compact(after)
    found = diff_label_maps(small_before, small_after)

    def b(i: int) -> int:
        return int(ids_before[i])

    def a(i: int) -> int:
        return int(ids_after[i])

    return Corrections(
        added=tuple(a(i) for i in found.added),
        deleted=tuple(b(i) for i in found.deleted),
        modified=tuple((b(i), a(j)) for i, j in found.modified),
        merged=tuple((tuple(b(i) for i in bs), a(j)) for bs, j in found.merged),
        split=tuple((b(i), tuple(a(j) for j in as_)) for i, as_ in found.split),
        unchanged=tuple(a(i) for i in found.unchanged),
    )


def correction_rows(corrections: Corrections) -> list[dict[str, Any]]:
    """``corrections`` rows (kind, before_ids, after_ids) of a diff; unchanged objects omitted."""
    rows = [("added", [], [i]) for i in corrections.added]
    rows += [("deleted", [i], []) for i in corrections.deleted]
    rows += [("modified", [i], [j]) for i, j in corrections.modified]
    rows += [("merged", list(bs), [j]) for bs, j in corrections.merged]
    rows += [("split", [i], list(as_)) for i, as_ in corrections.split]
    return [
        {"kind": kind, "before_ids": [int(i) for i in before], "after_ids": [int(i) for i in after]}
        for kind, before, after in rows
    ]
