"""Labels, polygons and centres that follow each other live: incremental, per touched object.

After each edit only the objects it touched are recomputed, so one edit costs about the same
with 50 or 5,000 objects in the image. A :class:`LabelIndex` keeps every object's bounding box;
it is built once when an image is opened (one pass over the label map) and updated by each
function here.

How a viewer uses it (the napari wiring lives in ``_widgets``; everything here takes arrays)::

    index = LabelIndex(labels)                            # on open
    # a brush stroke painted `region` (slices); `before` = labels[region] before the stroke
    update = after_paint(labels, index, region, before)
    # or, from napari's Labels `paint` event: for indices, old_values, _ in event.value
    update = after_pixels_changed(labels, index, indices, old_values)
    # a polygon of object 12 was moved, or a new polygon drawn (label_id=None)
    update = set_polygon(labels, index, 12, vertices)
    # a polygon or a centre of objects 4 and 9 was deleted
    update = delete_objects(labels, index, [4, 9])
    # then: replace update.polygons / update.centres in the Shapes / Points layers, remove
    # update.deleted, refresh the Labels layer in update.region.

Coordinates are napari's ``(row, col)`` pixels (``(plane, row, col)`` for 3D centres); polygons
are 2D only (a 3D label map gets centres and no polygons). The functions that edit change the
label map in place (the layer's own array) and return what changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon

from .geometry import centres, mask_to_polygon, polygons_from_labels

Box = tuple[int, ...]  # half-open (min..., max...) as in napari_cellist.types
Region = tuple[slice, ...]


@dataclass(frozen=True)
class LiveUpdate:
    """What one edit changed, to apply to the Shapes / Points / Labels layers.

    Parameters
    ----------
    polygons : dict
        ``{label_id: (N, 2) (row, col) outline}`` of every touched object that still exists
        and has an outline (2D; at least 3 vertices). For :func:`set_polygon` the edited
        object's entry is the polygon as given.
    centres : dict
        ``{label_id: (ndim,) centre of mass}`` of every touched object that still exists.
    deleted : tuple of int
        Objects that no longer exist (erased, deleted, painted over).
    region : tuple of slice or None
        Bounding region of the label-map pixels that changed (None: none changed).
    new_id : int or None
        The id given to a newly drawn polygon.
    """

    polygons: dict[int, np.ndarray] = field(default_factory=dict)
    centres: dict[int, np.ndarray] = field(default_factory=dict)
    deleted: tuple[int, ...] = ()
    region: Region | None = None
    new_id: int | None = None


class LabelIndex:
    """Bounding boxes of the objects of a label map, kept current by the live-sync functions.

    Parameters
    ----------
    labels : np.ndarray
        Integer label map ``(Y, X)`` or ``(Z, Y, X)``; 0 is background.

    Notes
    -----
    Building the index is one :func:`scipy.ndimage.find_objects` pass (tens of milliseconds
    for a 2k x 2k map); afterwards each update looks only at the boxes it is told about.
    """

    def __init__(self, labels: np.ndarray) -> None:
        labels = np.asarray(labels)
        if labels.ndim not in (2, 3) or labels.dtype.kind not in "iu":
            raise ValueError(
                f"LabelIndex needs an integer 2D or 3D label map, got dtype {labels.dtype} and "
                f"shape {labels.shape}."
            )
        self.shape = labels.shape
        self.boxes: dict[int, Box] = {}
        for index, slc in enumerate(ndi.find_objects(labels), start=1):
            if slc is not None:
                self.boxes[index] = tuple(s.start for s in slc) + tuple(s.stop for s in slc)
        self._arrays_stale = True
        self._next = max(self.boxes, default=0) + 1

    def __len__(self) -> int:
        return len(self.boxes)

    def next_id(self) -> int:
        """A fresh id, larger than every id the index has seen (ids are never reused)."""
        found = self._next
        self._next += 1
        return found

    def ids_in_region(self, region: Region) -> set[int]:
        """Ids whose box overlaps ``region`` (one vectorised test over all boxes)."""
        if not self.boxes:
            return set()
        if self._arrays_stale:  # rebuilt only when asked after a change (~2 ms for 5k boxes)
            self._refresh_array()
        ndim = len(self.shape)
        lo = np.array([s.start for s in region])
        hi = np.array([s.stop for s in region])
        overlap = (self._box_array[:, :ndim] < hi).all(1) & (self._box_array[:, ndim:] > lo).all(1)
        return set(self._id_array[overlap].tolist())

    def update(self, labels: np.ndarray, ids: Iterable[int], region: Region | None) -> set[int]:
        """Recompute the boxes of ``ids`` after pixels changed inside ``region``.

        An object's new box lies inside its old box joined with ``region``; only that part of
        the label map is read. Returns the ids that no longer exist (removed from the index).
        """
        gone = set()
        for label_id in ids:
            label_id = int(label_id)
            if label_id <= 0:
                continue
            search = _union(_as_region(self.boxes.get(label_id)), region)
            box = None if search is None else _tight_box(labels[search] == label_id, search)
            if box is None:
                if self.boxes.pop(label_id, None) is not None:
                    gone.add(label_id)
            else:
                self.boxes[label_id] = box
                self._next = max(self._next, label_id + 1)
        self._arrays_stale = True
        return gone

    def forget(self, ids: Iterable[int]) -> None:
        """Remove objects known to be gone from the index."""
        for label_id in ids:
            self.boxes.pop(int(label_id), None)
        self._arrays_stale = True

    def _refresh_array(self) -> None:
        ndim = len(self.shape)
        self._id_array = np.fromiter(self.boxes, np.int64, len(self.boxes))
        self._box_array = np.array(list(self.boxes.values()), np.int64).reshape(-1, 2 * ndim)
        self._arrays_stale = False


def object_geometry(
    labels: np.ndarray, label_id: int, box: Box, tolerance: float = 1.0
) -> tuple[np.ndarray | None, np.ndarray]:
    """Outline (2D; None when under 3 vertices or 3D) and centre of one object, from its box."""
    region = _as_region(box)
    mask = labels[region] == label_id
    offset = np.array([s.start for s in region], float)
    centre = np.argwhere(mask).mean(axis=0) + offset
    if labels.ndim != 2:
        return None, centre
    outline = mask_to_polygon(mask, tolerance)
    return (outline + offset if len(outline) >= 3 else None), centre


def after_paint(
    labels: np.ndarray,
    index: LabelIndex,
    region: Region,
    before: np.ndarray | None = None,
    tolerance: float = 1.0,
) -> LiveUpdate:
    """Outlines and centres of the objects a brush stroke (paint, erase, fill) touched.

    Parameters
    ----------
    labels : np.ndarray
        The label map after the edit.
    index : LabelIndex
        The index of the label map before the edit; updated.
    region : tuple of slice
        Bounding region of the edited pixels (a brush stroke's extent).
    before : np.ndarray, optional
        ``labels[region]`` before the edit: then exactly the ids whose pixels changed are
        recomputed. Without it, every object present in the region or whose box overlaps it.
    tolerance : float
        Outline simplification in pixels (as :func:`~napari_cellist.geometry.mask_to_polygon`).

    Returns
    -------
    LiveUpdate
    """
    region = _clip(region, labels.shape)
    after = labels[region]
    if before is not None:
        before = np.asarray(before)
        if before.shape != after.shape:
            raise ValueError(
                f"before has shape {before.shape} but the painted region is {after.shape}; "
                "pass labels[region] as it was before the edit."
            )
        changed = before != after
        touched = set(np.unique(before[changed]).tolist()) | set(np.unique(after[changed]).tolist())
    else:
        touched = set(np.unique(after).tolist()) | index.ids_in_region(region)
    return _recompute(labels, index, touched - {0}, region, tolerance)


def after_pixels_changed(
    labels: np.ndarray,
    index: LabelIndex,
    indices: tuple[np.ndarray, ...],
    old_values: np.ndarray,
    tolerance: float = 1.0,
) -> LiveUpdate:
    """Like :func:`after_paint`, from the changed pixels themselves (napari's ``paint`` event).

    Parameters
    ----------
    labels : np.ndarray
        The label map after the edit.
    index : LabelIndex
        Its index before the edit; updated.
    indices : tuple of np.ndarray
        One integer coordinate array per axis of the pixels that were written (napari's
        ``event.value[k][0]``).
    old_values : np.ndarray
        Their values before the edit (``event.value[k][1]``).
    tolerance : float
        Outline simplification in pixels.
    """
    coords = [np.asarray(i, np.int64).ravel() for i in indices]
    if len(coords) != labels.ndim:
        raise ValueError(
            f"indices has {len(coords)} coordinate arrays; the label map has {labels.ndim} axes."
        )
    if coords[0].size == 0:
        return LiveUpdate()
    region = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
    new_values = labels[tuple(coords)]
    touched = set(np.unique(np.asarray(old_values).ravel()).tolist())
    touched |= set(np.unique(new_values).tolist())
    return _recompute(labels, index, touched - {0}, _clip(region, labels.shape), tolerance)


def set_polygon(
    labels: np.ndarray,
    index: LabelIndex,
    label_id: int | None,
    vertices: np.ndarray,
    tolerance: float = 1.0,
) -> LiveUpdate:
    """Write a moved, reshaped or newly drawn polygon into a 2D label map (in place).

    The object's old pixels are cleared and the pixels inside the polygon (centre inside, as
    :func:`~napari_cellist.geometry.rasterize_polygon`) get its id, over any other object there;
    those objects' outlines and centres are recomputed too (one painted over entirely is
    deleted).

    Parameters
    ----------
    labels : np.ndarray
        int ``(Y, X)`` label map, changed in place.
    index : LabelIndex
        Its index; updated.
    label_id : int or None
        The object the polygon belongs to; None or 0 for a new polygon (a fresh id is given).
    vertices : np.ndarray
        ``(N, 2)`` (row, col) vertices, N >= 3.
    tolerance : float
        Outline simplification of the other touched objects.

    Raises
    ------
    ValueError
        3D label map, or not an ``(N >= 3, 2)`` polygon.
    """
    if labels.ndim != 2:
        raise ValueError("Polygons edit 2D label maps only; edit 3D objects by painting.")
    vertices = np.asarray(vertices, float)
    if vertices.ndim != 2 or vertices.shape[1] != 2 or len(vertices) < 3:
        raise ValueError(
            f"A polygon needs (N, 2) (row, col) vertices with N >= 3, got shape {vertices.shape}."
        )
    new = not label_id or int(label_id) <= 0
    label_id = index.next_id() if new else int(label_id)
    old = _as_region(index.boxes.get(label_id))
    if old is not None:
        crop = labels[old]
        crop[crop == label_id] = 0
    rr, cc = draw_polygon(vertices[:, 0], vertices[:, 1], labels.shape)
    covered = set(np.unique(labels[rr, cc]).tolist()) - {0, label_id}
    labels[rr, cc] = label_id
    drawn = None if rr.size == 0 else (slice(rr.min(), rr.max() + 1), slice(cc.min(), cc.max() + 1))
    region = _union(old, drawn)
    update = _recompute(labels, index, covered | {label_id}, region, tolerance)
    if label_id in update.centres:
        update.polygons[label_id] = vertices
    return LiveUpdate(
        update.polygons, update.centres, update.deleted, region, label_id if new else None
    )


def delete_objects(labels: np.ndarray, index: LabelIndex, ids: Iterable[int]) -> LiveUpdate:
    """Delete objects (their polygon or centre was deleted): clear their pixels in place."""
    region = None
    deleted = []
    for label_id in sorted({int(i) for i in ids} - {0}):
        box = _as_region(index.boxes.get(label_id))
        if box is None:
            continue
        crop = labels[box]
        crop[crop == label_id] = 0
        region = _union(region, box)
        deleted.append(label_id)
    index.forget(deleted)
    return LiveUpdate(deleted=tuple(deleted), region=region)


def full_sync(labels: np.ndarray, tolerance: float = 1.0) -> LiveUpdate:
    """Outlines and centres of every object (the non-incremental reference, e.g. on open)."""
    ids, points = centres(labels)
    polygons = polygons_from_labels(labels, tolerance) if labels.ndim == 2 else {}
    return LiveUpdate(polygons, {int(i): p for i, p in zip(ids, points, strict=True)})


# -- helpers ------------------------------------------------------------------------------------
def _recompute(
    labels: np.ndarray, index: LabelIndex, ids: set[int], region: Region | None, tolerance: float
) -> LiveUpdate:
    gone = index.update(labels, ids, region)
    polygons: dict[int, np.ndarray] = {}
    found_centres: dict[int, np.ndarray] = {}
    for label_id in sorted(ids - gone):
        box = index.boxes.get(label_id)
        if box is None:
            continue
        outline, centre = object_geometry(labels, label_id, box, tolerance)
        found_centres[label_id] = centre
        if outline is not None:
            polygons[label_id] = outline
    return LiveUpdate(polygons, found_centres, tuple(sorted(gone)), region)


def _as_region(box: Box | None) -> Region | None:
    if box is None:
        return None
    ndim = len(box) // 2
    return tuple(slice(box[i], box[i + ndim]) for i in range(ndim))


def _union(a: Region | None, b: Region | None) -> Region | None:
    if a is None or b is None:
        return a if b is None else b
    return tuple(
        slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True)
    )


def _clip(region: Region, shape: tuple[int, ...]) -> Region:
    if len(region) != len(shape):
        raise ValueError(
            f"The region {region} has {len(region)} axes; the label map has {len(shape)}."
        )
    clipped = []
    for s, size in zip(region, shape, strict=True):
        start, stop, _ = s.indices(size)
        clipped.append(slice(start, max(start, stop)))
    return tuple(clipped)


def _tight_box(mask: np.ndarray, region: Region) -> Box | None:
    """Half-open box of the True pixels of ``mask`` (a crop at ``region``); None if none."""
    starts, stops = [], []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        if hit.size == 0:
            return None
        starts.append(region[axis].start + int(hit[0]))
        stops.append(region[axis].start + int(hit[-1]) + 1)
    return tuple(starts) + tuple(stops)
