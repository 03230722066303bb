"""*Annotations* dock widget: sync labels, polygons and points; set classes, merge, commit, restore."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from magicgui.widgets import Container, FileEdit, LineEdit, PushButton

from ..labels import merge_labels, remove_labels
from ..layers import (
    layer_name,
    objects_from_metadata,
    objects_from_shapes_layer,
    paint_labels,
    points_from_layer,
    polygons_from_shapes_layer,
    shape_metadata,
)
from ..store import StoreError
from ..types import DEFAULT_CLASS, ObjectMeta, Progress
from ._common import (
    DockWidget,
    ImageLayerChoice,
    LabelsLayerChoice,
    annotation_tuples,
    extra_points,
    layer_path,
    layer_pixels,
    role_layer,
    set_annotation_layers,
    tuple_polygons_and_centres,
)
from ._restore import restore_job, show_restored
from ._runner import JobRunner, StatusLine, notify_error, notify_info

logger = logging.getLogger(__name__)


class AnnotationsWidget(DockWidget):
    """Keep an image's Labels / Shapes / Points consistent and store them in the project.

    Public actions: :meth:`sync`, :meth:`set_class`, :meth:`merge`, :meth:`delete`,
    :meth:`commit`, :meth:`restore`, :meth:`open_project`. Each first applies the polygon and
    centre edits not yet synced, so no edit is ever dropped.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer, labels=False)
        self.image = ImageLayerChoice(self.viewer)
        self.labels_choice = LabelsLayerChoice(self.viewer, self.image)
        self.project = FileEdit(
            label="project",
            mode="d",
            value=str(self.session.project),
            tooltip="Folder of the project store (cellist.sqlite), or a database URL.",
        )
        self.open_button = PushButton(
            text="Open project", tooltip="Use this project store from now on."
        )
        self.class_name = LineEdit(
            label="class", value=DEFAULT_CLASS, tooltip="Class given to the selected objects."
        )
        self.set_class_button = PushButton(
            text="Set class of selected",
            tooltip="Select polygons (Shapes layer, select mode), then press this.",
        )
        self.merge_button = PushButton(
            text="Merge selected",
            tooltip="Merge the selected polygons (or labels) into one object.",
        )
        self.delete_button = PushButton(
            text="Delete selected", tooltip="Delete the selected objects."
        )
        self.sync_button = PushButton(
            text="Sync labels / polygons / points",
            tooltip="Apply polygon edits and deleted centre points to the labels, then redraw polygons and centres from the labels.",
        )
        self.commit_button = PushButton(
            text="Commit",
            tooltip="Store the chosen Labels layer (with the image's polygons' classes and extra points) and the log of corrections in the project (one transaction).",
        )
        self.restore_button = PushButton(
            text="Load committed", tooltip="Show the annotations last committed for this image."
        )
        self.count = StatusLine()
        self.runner = JobRunner()
        self.extend(
            [
                Container(labels=True, widgets=[self.image, self.labels_choice, self.project]),
                self.open_button,
                Container(labels=True, widgets=[self.class_name]),
                self.set_class_button,
                self.merge_button,
                self.delete_button,
                self.sync_button,
                self.commit_button,
                self.restore_button,
                self.runner,
                self.count,
            ]
        )
        self.open_button.changed.connect(lambda: self.open_project())
        self.set_class_button.changed.connect(self.set_class)
        self.merge_button.changed.connect(self.merge)
        self.delete_button.changed.connect(self.delete)
        self.sync_button.changed.connect(lambda: self.sync())
        self.commit_button.changed.connect(lambda: self.commit())
        self.restore_button.changed.connect(lambda: self.restore())
        self.fit_labels()

    # -- helpers -------------------------------------------------------------------------------
    def _own_labels(self, name: str) -> bool:
        """True when the chosen Labels layer is the image's own (with polygons and centres)."""
        return self.labels_choice.value == layer_name(name, "labels")

    def _layers(self) -> tuple[str, Any, Any]:
        name = self.image.layer().name
        if not self.labels_choice.value:
            raise ValueError(
                f"{name} has no labels yet: run a model, choose a Labels layer or press 'Load committed'."
            )
        labels = self.labels_choice.layer()
        shapes = role_layer(self.viewer, name, "polygons") if self._own_labels(name) else None
        return name, labels, shapes

    def _update_count(self, objects: dict[int, ObjectMeta]) -> None:
        classes = Counter(m.class_name for m in objects.values())
        detail = ", ".join(f"{c}: {n}" for c, n in sorted(classes.items()))
        self.count.say(f"{len(objects)} objects" + (f" ({detail})" if len(classes) > 1 else ""))

    def _selected_ids(self, shapes: Any, labels_layer: Any) -> list[int]:
        if shapes is not None and shapes.selected_data:
            ids = [int(shapes.features["id"].iloc[i]) for i in sorted(shapes.selected_data)]
            return [i for i in ids if i > 0]
        selected = int(labels_layer.selected_label)
        return [selected] if selected in np.unique(labels_layer.data) else []

    def _read(self) -> _Shown:
        """What the layers show now (GUI thread: copies and references, no geometry)."""
        name, labels_layer, shapes = self._layers()
        own = self._own_labels(name)
        labels = np.array(labels_layer.data, np.int32)  # a copy: the user may paint meanwhile
        centres = role_layer(self.viewer, name, "centres") if own else None
        return _Shown(
            name=name,
            own=own,
            labels_layer=labels_layer,
            labels=labels,
            polygons=polygons_from_shapes_layer(shapes) if shapes is not None else [],
            centre_ids=points_from_layer(centres)[0]
            if centres is not None
            else self.session.state(name).synced_centres,
            metadata=shape_metadata(shapes) if shapes is not None else None,
            extra=extra_points(self.viewer, name) if own else None,
            scale=tuple(self.image.layer().scale)[-labels.ndim :],
        )

    def _apply(
        self, shown: _Shown, edit: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> _Applied:
        """Worker: the pending polygon / centre edits (then ``edit``) applied to the labels, the
        objects and, for the image's own labels, the layer data of labels, polygons, centres."""
        labels = shown.labels
        if shown.own:
            labels = self.session.sync(shown.name, labels, shown.polygons, shown.centre_ids)
        if edit is not None:
            labels = edit(labels)
        objects = objects_from_metadata(shown.metadata, labels)
        tuples = (
            annotation_tuples(self.session, shown.name, labels, objects, shown.extra, shown.scale)
            if shown.own
            else None
        )
        return _Applied(labels, objects, tuples)

    def _show_applied(self, shown: _Shown, applied: _Applied, paint: bool = False) -> None:
        """GUI thread: hand the finished layer data to napari (one update per layer)."""
        if applied.tuples is not None:
            set_annotation_layers(self.viewer, self.session, shown.name, applied.tuples)
            self._update_count(applied.objects)
        elif paint:
            paint_labels(shown.labels_layer, applied.labels)

    def _start(
        self, job: Callable[[], Generator[Progress, None, Any]], on_done: Callable, wait: bool
    ) -> Any:
        """Run ``job`` in a worker; ``on_done(result)`` on the GUI thread. Returns what
        ``on_done`` returned when the job finished within this call (``CELLIST_SYNC=1``, or
        ``wait``), else None (still running, or it failed)."""
        box: dict[str, Any] = {}
        self.runner.run(job, on_done=lambda result: box.setdefault("value", on_done(result)))
        if wait and self.runner.busy:
            self.runner.wait(3_600_000)
        return box.get("value")

    # -- actions -------------------------------------------------------------------------------
    def sync(self, wait: bool = False) -> tuple[np.ndarray, dict[int, ObjectMeta]] | None:
        """Make labels, polygons and centres agree; returns the labels and their objects.

        Applying the edits and drawing the outlines run in a worker; the GUI thread reads the
        layers and sets each layer's data once. The result is returned when the job finished
        within the call (``CELLIST_SYNC=1``, or ``wait=True``), else None.
        """
        try:
            shown = self._read()
        except ValueError as err:
            notify_error(str(err))
            return None

        def job() -> Generator[Progress, None, _Applied]:
            yield Progress(0, 1, f"syncing {shown.name}...")
            return self._apply(shown)

        def done(applied: _Applied) -> tuple[np.ndarray, dict[int, ObjectMeta]]:
            self._show_applied(shown, applied)
            return applied.labels, applied.objects

        return self._start(job, done, wait)

    def commit(self, wait: bool = False) -> Any:
        """Sync, then store the annotations (and extra points) of the image in the project.

        Syncing, encoding and the store's transaction run in a worker. Returns the store's
        CommitResult when the job finished within the call (``CELLIST_SYNC=1``, or
        ``wait=True``), else None (also when nothing was committed: the reason is shown).
        """
        try:
            shown = self._read()
            layer = self.image.layer()
            pixels, path = layer_pixels(layer), layer_path(layer)
        except ValueError as err:
            notify_error(str(err))
            return None
        source = self.labels_choice.value

        def job() -> Generator[Progress, None, tuple[_Applied, Any]]:
            yield Progress(0, 2, f"syncing {shown.name}...")
            applied = self._apply(shown)
            yield Progress(1, 2, f"committing {len(applied.objects)} objects of {shown.name}...")
            # None when no polygons were drawn (too many objects): the store traces them
            polygons = tuple_polygons_and_centres(applied.tuples)[0] if shown.own else None
            try:
                result = self.session.commit(
                    shown.name,
                    pixels,
                    applied.labels,
                    applied.objects,
                    path=path,
                    polygons=polygons or None,
                    points=shown.extra,
                )
            except (StoreError, ValueError, OSError) as err:
                return applied, err
            return applied, result

        def done(outcome: tuple[_Applied, Any]) -> Any:
            applied, result = outcome
            self._show_applied(shown, applied)
            if isinstance(result, Exception):
                notify_error(f"Nothing was committed: {result}")
                return None
            self._committed(shown.name, source, result)
            return result

        return self._start(job, done, wait)

    def _committed(self, name: str, source: str | None, result: Any) -> None:
        message = f"Committed {result.n_objects} objects of {name} from {source}: {_summary(result.corrections.summary())}."
        if getattr(result, "stale", False):
            message += (
                f" Note: {name} had been committed meanwhile from another window or by "
                f"another person (commit {result.replaced}); this commit replaced it, and both "
                "stay in the project's history."
            )
        self.count.say(message)
        notify_info(message)

    def restore(self, quiet: bool = False, wait: bool = False) -> bool:
        """Show the committed annotations of the chosen image; False when there are none.

        Loading, decoding and the outlines run in a worker. True once they are shown within
        the call (``CELLIST_SYNC=1``, or ``wait=True``); False when there are none, it failed,
        or it is still running.
        """
        try:
            name = self.image.layer().name
            job = restore_job(self.viewer, self.session, name)
        except ValueError as err:
            notify_error(str(err))
            return False

        def done(result: tuple[int, list] | None) -> bool:
            n = show_restored(self.viewer, self.session, name, result)
            if n is None:
                if not quiet:
                    notify_info(f"Nothing committed yet for {name}.")
                return False
            self.labels_choice.follow(name)
            self.count.say(f"{n} committed objects")
            notify_info(f"Loaded the committed annotations of {name} ({n} objects).")
            return True

        return bool(self._start(job, done, wait))

    def open_project(self, location: str | None = None) -> bool:
        """Use the project store at ``location`` (default: the project field); False on failure."""
        if location is not None:
            self.project.value = location
        self.session.open_project(str(self.project.value))
        try:
            _ = self.session.store
        except (StoreError, ValueError, OSError) as err:
            notify_error(str(err))
            return False
        notify_info(f"Project: {self.project.value}")
        return True

    def set_class(self) -> bool:
        """Give the selected polygons the class typed in *class*; False when none is selected."""
        try:
            _, labels_layer, shapes = self._layers()
        except ValueError as err:
            notify_error(str(err))
            return False
        if shapes is None or not shapes.selected_data:
            notify_error("Select polygons first (Shapes layer, selection tool).")
            return False
        features = shapes.features.copy()
        for index in shapes.selected_data:
            features.loc[index, "class"] = self.class_name.value.strip() or DEFAULT_CLASS
        shapes.features = features
        shapes.refresh_colors()
        self._update_count(objects_from_shapes_layer(shapes, np.asarray(labels_layer.data)))
        return True

    def merge(self) -> bool:
        """Merge the selected objects into one (after applying pending edits)."""
        return self._edit_selected("merge")

    def delete(self) -> bool:
        """Delete the selected objects (after applying pending edits)."""
        return self._edit_selected("delete")

    def _edit_selected(self, operation: str, wait: bool = False) -> bool:
        """Merge or delete the selected objects in a worker; False when it could not start."""
        try:
            shown = self._read()
            ids = self._selected_ids(
                role_layer(self.viewer, shown.name, "polygons") if shown.own else None,
                shown.labels_layer,
            )
            if not ids or (operation == "merge" and len(ids) < 2):
                raise ValueError(
                    "Select objects first (two or more to merge): polygons in select mode, or a label."
                )
        except ValueError as err:
            notify_error(str(err))
            return False

        def edit(labels: np.ndarray) -> np.ndarray:
            return (
                merge_labels(labels, ids)[0] if operation == "merge" else remove_labels(labels, ids)
            )

        def job() -> Generator[Progress, None, _Applied]:
            yield Progress(0, 1, f"{operation} {len(ids)} objects...")
            return self._apply(shown, edit)

        self._start(job, lambda applied: self._show_applied(shown, applied, paint=True), wait)
        return True


@dataclass(frozen=True)
class _Shown:
    """The layers of an image as read on the GUI thread before a job."""

    name: str
    own: bool  # the image's own labels (with polygons and centres)
    labels_layer: Any
    labels: np.ndarray  # int32 copy
    polygons: list[tuple[int, np.ndarray]]
    centre_ids: Any
    metadata: dict[int, tuple[str, float, str]] | None
    extra: np.ndarray | None
    scale: tuple[float, ...]


@dataclass(frozen=True)
class _Applied:
    """A job's result: labels with the edits applied, their objects, the layer data (own
    labels only)."""

    labels: np.ndarray
    objects: dict[int, ObjectMeta]
    tuples: list[Any] | None


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no changes"
