"""The napari-event wiring of live sync: labels, polygons and centres that follow each other.

:class:`LiveLink` listens to one image's annotation layers and applies
:mod:`napari_cellist.live_sync` after every edit, touching only the objects the edit touched:

* a brush stroke / fill / erase on the Labels layer (its ``paint`` event) re-traces the outline
  and the centre of each object whose pixels changed;
* a polygon moved, reshaped or drawn on the Shapes layer (``data`` event, ``changed`` /
  ``added``) is written into the label map; a deleted polygon deletes its object;
* a centre deleted on the Points layer deletes its object.

A paint costs napari's own paint plus the label-side work (index, outlines of the touched
objects) at once; showing the new outlines and centres in the Shapes and Points layers is what
napari makes expensive on a layer of thousands of shapes, so for paints it is coalesced: the
touched objects' outlines and centres are collected and shown ``defer_ms`` after the last paint
event (one update per brush stroke), or at once by :meth:`LiveLink.flush`.

After each edit ``on_edit()`` is called (the Project panel hands a draft snapshot to the
:class:`~napari_cellist.drafts.DraftWriter` there). Changes the link makes to the layers itself
are not taken as edits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..live_sync import (
    LabelIndex,
    LiveUpdate,
    after_paint,
    after_pixels_changed,
    delete_objects,
    set_polygon,
)
from ._live_layers import history_lengths, item_region, replace_points, replace_shapes

logger = logging.getLogger(__name__)


class LiveLink:
    """Keeps one image's Labels, Shapes (2D) and Points layers consistent, edit by edit.

    Parameters
    ----------
    labels_layer : napari.layers.Labels
        The label map ``(Y, X)`` / ``(Z, Y, X)``, edited in place.
    shapes_layer : napari.layers.Shapes or None
        Polygons with an ``id`` feature (2D images).
    points_layer : napari.layers.Points or None
        Object centres with an ``id`` feature (0: a point without a mask).
    on_edit : callable, optional
        Called with no argument after each user edit has been applied.
    tolerance : float
        Outline simplification in pixels.
    defer_ms : int
        Milliseconds after the last paint event before the touched objects' outlines and
        centres are shown in the Shapes / Points layers (a Qt single-shot timer, restarted by
        every paint, so one update per stroke); 0: show them within each paint event.
    """

    def __init__(
        self,
        labels_layer: Any,
        shapes_layer: Any | None = None,
        points_layer: Any | None = None,
        on_edit: Callable[[], None] | None = None,
        tolerance: float = 1.0,
        defer_ms: int = 150,
    ) -> None:
        if defer_ms < 0:
            raise ValueError(f"defer_ms must be >= 0 milliseconds, not {defer_ms}.")
        self.labels_layer = labels_layer
        self.shapes_layer = shapes_layer
        self.points_layer = points_layer
        self.on_edit = on_edit
        self.tolerance = tolerance
        self.index = LabelIndex(np.asarray(labels_layer.data))
        self.original = frozenset(self.index.boxes)  # the objects as opened
        self.touched: set[int] = set()  # objects changed since (edited, added or deleted)
        self.n_edits = 0
        self._busy = False  # True while the link itself changes a layer
        self._removing_shapes: list[int] = []
        self._removing_points: list[int] = []
        self._history = history_lengths(labels_layer)
        # outlines / centres computed by paints and not yet shown (see flush)
        self._pending_ids: set[int] = set()
        self._pending_polygons: dict[int, np.ndarray] = {}
        self._pending_centres: dict[int, np.ndarray] = {}
        self._timer = None
        if defer_ms > 0:
            from qtpy.QtCore import QTimer

            self._timer = QTimer()
            self._timer.setSingleShot(True)
            self._timer.setInterval(int(defer_ms))
            self._timer.timeout.connect(self.flush)
        labels_layer.events.paint.connect(self._on_paint)
        labels_layer.events.set_data.connect(self._on_set_data)
        if shapes_layer is not None:
            shapes_layer.events.data.connect(self._on_shapes)
            shapes_layer.events.features.connect(self._on_features)
        if points_layer is not None:
            points_layer.events.data.connect(self._on_points)

    def disconnect(self) -> None:
        """Stop listening (the image is closed); outlines not yet shown are dropped (the label
        map is up to date; call :meth:`flush` first to show them)."""
        if self._timer is not None:
            self._timer.stop()
        self._pending_ids.clear()
        self._pending_polygons.clear()
        self._pending_centres.clear()
        self.labels_layer.events.paint.disconnect(self._on_paint)
        self.labels_layer.events.set_data.disconnect(self._on_set_data)
        if self.shapes_layer is not None:
            self.shapes_layer.events.data.disconnect(self._on_shapes)
            self.shapes_layer.events.features.disconnect(self._on_features)
        if self.points_layer is not None:
            self.points_layer.events.data.disconnect(self._on_points)

    @property
    def labels(self) -> np.ndarray:
        """The layer's label map (the live array, not a copy)."""
        return self.labels_layer.data

    # -- napari events ------------------------------------------------------------------------------
    def _on_paint(self, event: Any) -> None:
        if self._busy:
            return
        labels = self.labels
        for atom in event.value:
            # napari announces a single brush dab *before* writing it (a drag after it): the
            # atom is written here first (napari then writes the same values again)
            if hasattr(atom, "slice_key"):  # napari's masked paint atom (brush, fill, polygon)
                region = tuple(atom.slice_key)
                crop = labels[region]
                before = crop.copy()
                if atom.mask is None:
                    before = np.asarray(atom.old_values).reshape(before.shape)
                    crop[...] = atom.new_value
                else:
                    before[atom.mask] = atom.old_values
                    crop[atom.mask] = atom.new_value
                update = after_paint(labels, self.index, region, before, self.tolerance)
            else:  # (indices, old values, new values) of data_setitem
                indices, old_values, new_values = atom[0], atom[1], atom[2]
                labels[tuple(indices)] = new_values
                update = after_pixels_changed(
                    labels, self.index, tuple(indices), old_values, self.tolerance
                )
            self._defer(update)
        self._history = history_lengths(self.labels_layer)  # the item is in the history now
        self._edited()

    def _on_set_data(self, _event: Any = None) -> None:
        """Undo / redo (Ctrl+Z, Ctrl+Shift+Z) write the label map without a paint event: the
        objects in the replayed history item's region are recomputed."""
        lengths = history_lengths(self.labels_layer)
        previous, self._history = self._history, lengths
        if self._busy or lengths is None or previous is None:
            return
        undone = lengths == (previous[0] - 1, previous[1] + 1)
        redone = lengths == (previous[0] + 1, previous[1] - 1)
        if not (undone or redone):
            return  # a paint (its own event handled it) or a refresh
        history = self.labels_layer._redo_history if undone else self.labels_layer._undo_history
        region = item_region(history[-1], self.labels.ndim) if history else None
        if region is None:
            return
        self.apply(after_paint(self.labels, self.index, region, None, self.tolerance))
        self._edited()

    def _on_shapes(self, event: Any) -> None:
        if self._busy:
            return
        action = str(getattr(event, "action", ""))
        indices = [int(i) for i in getattr(event, "data_indices", ())]
        layer = self.shapes_layer
        if action.endswith("removing"):
            self._removing_shapes = [self._feature_id(layer, i) for i in indices]
            return
        if action.endswith("removed"):
            ids, self._removing_shapes = self._removing_shapes, []
            self._delete(ids, skip_shapes=True)
            self._edited()
            return
        if not (action.endswith("changed") or action.endswith("added")):
            return
        n = len(layer.data)
        for i in sorted({i % n for i in indices}) if n else []:
            label_id = self._feature_id(layer, i) if action.endswith("changed") else 0
            try:
                update = set_polygon(
                    self.labels, self.index, label_id, np.asarray(layer.data[i])[:, -2:]
                )
            except ValueError as err:
                logger.warning("polygon %d not applied: %s", i, err)
                continue
            if update.new_id is not None:
                self._set_feature_id(layer, i, update.new_id)
            self.apply(update, skip_polygon=update.new_id or label_id)
        self._edited()

    def _on_features(self, _event: Any = None) -> None:
        if not self._busy:  # a class set on polygons (Annotations widget, features table)
            self._edited()

    def object_status(self) -> dict[str, int]:
        """Objects now in the label map by status: ``untouched`` (as opened), ``edited``
        (opened, then changed) and ``added`` (drawn or painted since)."""
        now = set(self.index.boxes)
        added = now - self.original
        edited = (now & self.touched) - added
        return {
            "untouched": len(now - added - edited),
            "edited": len(edited),
            "added": len(added),
        }

    def _on_points(self, event: Any) -> None:
        if self._busy:
            return
        action = str(getattr(event, "action", ""))
        indices = [int(i) for i in getattr(event, "data_indices", ())]
        if action.endswith("removing"):
            self._removing_points = [self._feature_id(self.points_layer, i) for i in indices]
        elif action.endswith("removed"):
            ids, self._removing_points = self._removing_points, []
            self._delete([i for i in ids if i > 0], skip_points=True)
            self._edited()
        elif action.endswith("added") or action.endswith("changed"):
            self._edited()  # a point without a mask (id 0) or a moved centre: kept as drawn

    # -- applying an update ---------------------------------------------------------------------------
    @property
    def pending(self) -> frozenset[int]:
        """Ids whose outline / centre a paint changed and that are not shown yet."""
        return frozenset(self._pending_ids)

    def _defer(self, update: LiveUpdate) -> None:
        """Collect a paint's outlines and centres (newest wins) and (re)start the timer."""
        touched = set(update.polygons) | set(update.centres) | set(update.deleted)
        self.touched |= touched
        for label_id in touched:
            self._pending_ids.add(label_id)
            for pending, new in (
                (self._pending_polygons, update.polygons),
                (self._pending_centres, update.centres),
            ):
                if label_id in new:
                    pending[label_id] = new[label_id]
                else:
                    pending.pop(label_id, None)
        if self._timer is None:
            self.flush()
        else:
            self._timer.start()  # restarts: one layer update per stroke

    def flush(self) -> None:
        """Show the pending outlines and centres in the Shapes / Points layers now (one
        update for all objects painted since the last one)."""
        if self._timer is not None:
            self._timer.stop()
        if not self._pending_ids:
            return
        polygons, centres = self._pending_polygons, self._pending_centres
        deleted = tuple(self._pending_ids - set(polygons) - set(centres))
        self._pending_ids, self._pending_polygons, self._pending_centres = set(), {}, {}
        self.apply(LiveUpdate(polygons, centres, deleted), refresh_labels=False)

    def _delete(self, ids: list[int], skip_shapes: bool = False, skip_points: bool = False) -> None:
        ids = [i for i in ids if i > 0]
        if not ids:
            return
        update = delete_objects(self.labels, self.index, ids)
        self.apply(update, skip_shapes=skip_shapes, skip_points=skip_points)

    def apply(
        self,
        update: LiveUpdate,
        *,
        refresh_labels: bool = True,
        skip_polygon: int | None = None,
        skip_shapes: bool = False,
        skip_points: bool = False,
    ) -> None:
        """Show ``update`` in the layers: replace touched outlines and centres, drop deleted ones.
        A pending (deferred) outline / centre of an object in ``update`` is superseded by it."""
        touched = set(update.polygons) | set(update.centres) | set(update.deleted)
        self.touched |= touched
        self._pending_ids -= touched
        for label_id in touched:
            self._pending_polygons.pop(label_id, None)
            self._pending_centres.pop(label_id, None)
        self._busy = True
        try:
            if refresh_labels and update.region is not None:
                self.labels_layer.refresh()
            if self.shapes_layer is not None and not skip_shapes and touched:
                polygons = {k: v for k, v in update.polygons.items() if k != skip_polygon}
                drop = touched - ({skip_polygon} if skip_polygon else set())
                replace_shapes(self.shapes_layer, drop, polygons)
            if self.points_layer is not None and not skip_points and touched:
                replace_points(self.points_layer, touched, update.centres)
        finally:
            self._busy = False

    def _edited(self) -> None:
        self.n_edits += 1
        if self.on_edit is not None:
            self.on_edit()

    @staticmethod
    def _feature_id(layer: Any, i: int) -> int:
        ids = layer.features["id"] if "id" in layer.features else None
        if ids is None or not -len(ids) <= i < len(ids):
            return 0
        return int(ids.iloc[i])

    @staticmethod
    def _set_feature_id(layer: Any, i: int, label_id: int) -> None:
        if "id" in layer.features:
            layer.features.iloc[i, layer.features.columns.get_loc("id")] = int(label_id)
