"""*Annotations* dock widget: sync labels, polygons and points; set classes, merge, commit, restore."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
from magicgui.widgets import Container, FileEdit, LineEdit, PushButton

from ..geometry import bounding_boxes
from ..labels import merge_labels, remove_labels
from ..layers import (
    layer_name,
    objects_from_shapes_layer,
    points_from_layer,
    polygons_by_id,
    polygons_from_shapes_layer,
)
from ..store import StoreError
from ..types import DEFAULT_CLASS, ObjectMeta
from ._common import (
    DockWidget,
    ImageLayerChoice,
    LabelsLayerChoice,
    extra_points,
    layer_path,
    layer_pixels,
    restore_annotations,
    role_layer,
    show_annotations,
)
from ._runner import StatusLine, notify_error, notify_info

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
                self.count,
            ]
        )
        self.open_button.changed.connect(lambda: self.open_project())
        self.set_class_button.changed.connect(self.set_class)
        self.merge_button.changed.connect(self.merge)
        self.delete_button.changed.connect(self.delete)
        self.sync_button.changed.connect(self.sync)
        self.commit_button.changed.connect(self.commit)
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

    def _objects(self, labels: np.ndarray, shapes: Any) -> dict[int, ObjectMeta]:
        if shapes is None:
            return {i: ObjectMeta(i, box=b) for i, b in bounding_boxes(labels).items()}
        return objects_from_shapes_layer(shapes, labels)

    def _show(
        self,
        name: str,
        labels: np.ndarray,
        objects: dict[int, ObjectMeta],
        points: np.ndarray | None,
    ) -> None:
        show_annotations(self.viewer, self.session, name, labels, objects, points)
        self._update_count(objects)

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

    def _pending_applied(self, name: str, labels_layer: Any, shapes: Any) -> np.ndarray:
        """The labels with the polygon and centre edits not yet synced applied."""
        labels = np.asarray(labels_layer.data, np.int32)
        if not self._own_labels(name):
            return labels
        centres = role_layer(self.viewer, name, "centres")
        return self.session.sync(
            name,
            labels,
            polygons_from_shapes_layer(shapes) if shapes is not None else [],
            points_from_layer(centres)[0]
            if centres is not None
            else self.session.state(name).synced_centres,
        )

    # -- actions -------------------------------------------------------------------------------
    def sync(self) -> tuple[np.ndarray, dict[int, ObjectMeta]] | None:
        """Make labels, polygons and centres agree; returns the labels and their objects."""
        try:
            name, labels_layer, shapes = self._layers()
            meta = self._objects(np.asarray(labels_layer.data, np.int32), shapes)
            merged = self._pending_applied(name, labels_layer, shapes)
        except ValueError as err:
            notify_error(str(err))
            return None
        objects = {i: meta.get(i, ObjectMeta(i)) for i in bounding_boxes(merged)}
        if not self._own_labels(name):  # another Labels layer (e.g. ground truth): left as it is
            return merged, objects
        self._show(name, merged, objects, extra_points(self.viewer, name))
        return merged, self._objects(merged, role_layer(self.viewer, name, "polygons"))

    def commit(self) -> Any:
        """Sync, then store the annotations (and extra points) of the image in the project."""
        synced = self.sync()
        if synced is None:
            return None
        labels, objects = synced
        layer = self.image.layer()
        own = self._own_labels(layer.name)
        shapes = role_layer(self.viewer, layer.name, "polygons") if own else None
        try:
            result = self.session.commit(
                layer.name,
                layer_pixels(layer),
                labels,
                objects,
                path=layer_path(layer),
                polygons=polygons_by_id(shapes) if shapes is not None else None,
                points=extra_points(self.viewer, layer.name) if own else None,
            )
        except (StoreError, ValueError, OSError) as err:
            notify_error(f"Nothing was committed: {err}")
            return None
        message = f"Committed {result.n_objects} objects of {layer.name} from {self.labels_choice.value}: {_summary(result.corrections.summary())}."
        if getattr(result, "stale", False):
            message += (
                f" Note: {layer.name} had been committed meanwhile from another window or by "
                f"another person (commit {result.replaced}); this commit replaced it, and both "
                "stay in the project's history."
            )
        self.count.say(message)
        notify_info(message)
        return result

    def restore(self, quiet: bool = False) -> bool:
        """Show the committed annotations of the chosen image; False when there are none."""
        try:
            name = self.image.layer().name
            n = restore_annotations(self.viewer, self.session, name)
        except (StoreError, ValueError, OSError) as err:
            notify_error(str(err))
            return False
        if n is None:
            if not quiet:
                notify_info(f"Nothing committed yet for {name}.")
            return False
        self.labels_choice.follow(name)
        self.count.say(f"{n} committed objects")
        notify_info(f"Loaded the committed annotations of {name} ({n} objects).")
        return True

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

    def _edit_selected(self, operation: str) -> bool:
        try:
            name, labels_layer, shapes = self._layers()
            ids = self._selected_ids(shapes, labels_layer)
            if not ids or (operation == "merge" and len(ids) < 2):
                raise ValueError(
                    "Select objects first (two or more to merge): polygons in select mode, or a label."
                )
            meta = self._objects(np.asarray(labels_layer.data, np.int32), shapes)
            labels = self._pending_applied(name, labels_layer, shapes)
        except ValueError as err:
            notify_error(str(err))
            return False
        labels = (
            merge_labels(labels, ids)[0] if operation == "merge" else remove_labels(labels, ids)
        )
        objects = {i: meta.get(i, ObjectMeta(i)) for i in bounding_boxes(labels)}
        if self._own_labels(name):
            self._show(name, labels, objects, extra_points(self.viewer, name))
        else:
            from ..layers import paint_labels

            paint_labels(labels_layer, labels)
        return True


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no changes"
