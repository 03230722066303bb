"""Keeping an instance label map and its polygons consistent after edits to either.

Pure functions on arrays: the napari layers are converted by :mod:`napari_cellist.layers`.
Polygons are ``(N, 2)`` ``(row, col)`` vertex arrays keyed by label id; id 0 marks a polygon the
user drew that has no object yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .geometry import rasterize_polygon
from .labels import next_free_id


@dataclass(frozen=True)
class PolygonEdits:
    """How the user's polygons differ from the last synced ones (ids of the label map)."""

    deleted: tuple[int, ...] = ()
    modified: tuple[int, ...] = ()
    added: int = 0

    @property
    def any(self) -> bool:
        """True when there is at least one edit."""
        return bool(self.deleted or self.modified or self.added)


def _is_new(label_id: int, seen: set[int], known: set[int]) -> bool:
    """A polygon is new when it has no id (0), repeats an id (copy-paste) or names no object."""
    return label_id <= 0 or label_id in seen or label_id not in known


def _same_polygon(before: np.ndarray, after: np.ndarray) -> bool:
    """True when two vertex arrays are the same polygon (exactly equal first: the cheap test
    that settles thousands of untouched polygons)."""
    if before is after or (before.shape == after.shape and np.array_equal(before, after)):
        return True
    return before.shape == after.shape and bool(np.allclose(before, after, atol=1e-6))


def polygon_edits(
    current: Sequence[tuple[int, np.ndarray]],
    synced: Mapping[int, np.ndarray],
    label_ids: set[int] | None = None,
) -> PolygonEdits:
    """Compare the polygons in the layer now with those written at the last sync.

    ``label_ids`` (ids present in the label map) lets polygons of objects that were never
    synced count as unchanged rather than new.
    """
    known = set(synced) | (label_ids or set())
    seen: set[int] = set()
    modified, added = [], 0
    for label_id, vertices in current:
        if _is_new(label_id, seen, known):
            added += 1
            continue
        seen.add(label_id)
        before = synced.get(label_id)
        if before is not None and not _same_polygon(before, vertices):
            modified.append(label_id)
    deleted = tuple(sorted(set(synced) - seen))
    return PolygonEdits(deleted, tuple(sorted(modified)), added)


def apply_polygon_edits(
    labels: np.ndarray,
    current: Sequence[tuple[int, np.ndarray]],
    synced: Mapping[int, np.ndarray],
) -> tuple[np.ndarray, dict[int, int]]:
    """Write polygon edits into a 2D label map.

    Deleted polygons erase their object; a modified polygon replaces its object's pixels; a new
    polygon (id 0, unknown or repeated id) becomes a new object with a fresh id.

    Returns
    -------
    labels : np.ndarray
        The updated int32 label map (a copy).
    new_ids : dict
        ``{index in current: id given}`` for the new polygons.
    """
    if labels.ndim != 2:
        raise ValueError("Polygon edits apply to 2D label maps only.")
    out = np.asarray(labels, np.int32).copy()
    known = set(synced) | set(np.unique(out).tolist()) - {0}
    edits = polygon_edits(current, synced, known)
    if edits.deleted:
        out[np.isin(out, edits.deleted)] = 0
    modified = set(edits.modified)
    seen: set[int] = set()
    new_ids: dict[int, int] = {}
    next_id = max(next_free_id(out), max(synced, default=0) + 1)
    for index, (label_id, vertices) in enumerate(current):
        is_new = _is_new(label_id, seen, known)
        if not is_new:
            seen.add(label_id)
        if label_id in modified and not is_new:
            out[out == label_id] = 0
            out[rasterize_polygon(vertices, out.shape)] = label_id
        elif is_new:
            out[rasterize_polygon(vertices, out.shape)] = next_id
            new_ids[index] = next_id
            next_id += 1
    return out, new_ids
