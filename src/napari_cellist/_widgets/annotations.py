"""*Annotations* dock widget: sync labels, polygons and points; set classes, merge, commit, restore."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
from magicgui.widgets import Container, FileEdit, Label, LineEdit, PushButton

from ..geometry import bounding_boxes
from ..labels import merge_labels, remove_labels
from ..layers import (
    labels_to_layer_tuples,
    objects_from_shapes_layer,
    points_from_layer,
    polygons_by_id,
    polygons_from_shapes_layer,
    set_layers,
)
from ..store import StoreError
from ..types import DEFAULT_CLASS, ObjectMeta
from ._common import (
    ImageLayerChoice,
    extra_points,
    image_layer_names,
    layer_path,
    layer_pixels,
    role_layer,
    snapshot,
)
from ._runner import notify_error, notify_info
from ._session import session_for

logger = logging.getLogger(__name__)


class AnnotationsWidget(Container):
    """Keep an image's Labels / Shapes / Points consistent and store them in the project."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.image = ImageLayerChoice(napari_viewer)
        self.project = FileEdit(label="project", mode="d", value=str(self.session.project), tooltip="Folder of the project store (cellist.sqlite), or a database URL.")
        self.open_button = PushButton(text="Open project", tooltip="Use this project store from now on.")
        self.class_name = LineEdit(label="class", value=DEFAULT_CLASS, tooltip="Class given to the selected objects.")
        self.set_class_button = PushButton(text="Set class of selected", tooltip="Select polygons (Shapes layer, select mode), then press this.")
        self.merge_button = PushButton(text="Merge selected", tooltip="Merge the selected polygons (or labels) into one object.")
        self.delete_button = PushButton(text="Delete selected", tooltip="Delete the selected objects.")
        self.sync_button = PushButton(text="Sync labels / polygons / points", tooltip="Apply polygon edits and deleted centre points to the labels, then redraw polygons and centres from the labels.")
        self.commit_button = PushButton(text="Commit", tooltip="Store these annotations and the log of corrections in the project (one transaction).")
        self.restore_button = PushButton(text="Load committed", tooltip="Show the annotations last committed for this image.")
        self.count = Label(value="")
        self.extend([
            self.image, self.project, self.open_button, self.class_name, self.set_class_button,
            self.merge_button, self.delete_button, self.sync_button, self.commit_button,
            self.restore_button, self.count,
        ])
        self.open_button.changed.connect(self._on_open_project)
        self.set_class_button.changed.connect(self._on_set_class)
        self.merge_button.changed.connect(self._on_merge)
        self.delete_button.changed.connect(self._on_delete)
        self.sync_button.changed.connect(self.sync)
        self.commit_button.changed.connect(self.commit)
        self.restore_button.changed.connect(self.restore)
        napari_viewer.layers.events.inserted.connect(self._on_layer_inserted)

    def _on_layer_inserted(self, event: Any) -> None:
        """Reopening an image that has committed annotations shows them."""
        layer = event.value
        if layer.name not in image_layer_names(self.viewer) or not self.session.project_exists():
            return
        if role_layer(self.viewer, layer.name, "labels") is None:
            self.image.value = layer.name
            self.restore(quiet=True)

    # -- helpers -------------------------------------------------------------------------------
    def _layers(self) -> tuple[str, Any, Any]:
        name = self.image.layer().name
        labels = role_layer(self.viewer, name, "labels")
        if labels is None:
            raise ValueError(f"{name} has no labels yet: run a base model first or press 'Load committed'.")
        return name, labels, role_layer(self.viewer, name, "polygons")

    def _objects(self, labels: np.ndarray, shapes: Any) -> dict[int, ObjectMeta]:
        if shapes is None:
            return {i: ObjectMeta(i, box=b) for i, b in bounding_boxes(labels).items()}
        return objects_from_shapes_layer(shapes, labels)

    def _show(self, name: str, labels: np.ndarray, objects: dict[int, ObjectMeta], points: np.ndarray | None) -> None:
        scale = tuple(self.viewer.layers[name].scale)[-labels.ndim :]
        tuples = labels_to_layer_tuples(labels, objects, name, scale=scale, tolerance=self.session.tolerance, extra_points=points)
        set_layers(self.viewer, tuples)
        snapshot(self.viewer, self.session, name)
        self._update_count(objects)

    def _update_count(self, objects: dict[int, ObjectMeta]) -> None:
        classes = Counter(m.class_name for m in objects.values())
        detail = ", ".join(f"{c}: {n}" for c, n in sorted(classes.items()))
        self.count.value = f"{len(objects)} objects" + (f" ({detail})" if len(classes) > 1 else "")

    def _selected_ids(self, shapes: Any, labels_layer: Any) -> list[int]:
        if shapes is not None and shapes.selected_data:
            ids = [int(shapes.features["id"].iloc[i]) for i in sorted(shapes.selected_data)]
            return [i for i in ids if i > 0]
        selected = int(labels_layer.selected_label)
        return [selected] if selected in np.unique(labels_layer.data) else []

    # -- actions -------------------------------------------------------------------------------
    def sync(self) -> tuple[np.ndarray, dict[int, ObjectMeta]] | None:
        """Make labels, polygons and centres agree; returns the labels and their objects."""
        try:
            name, labels_layer, shapes = self._layers()
            meta = self._objects(np.asarray(labels_layer.data, np.int32), shapes)
            centres = role_layer(self.viewer, name, "centres")
            merged = self.session.sync(
                name,
                labels_layer.data,
                polygons_from_shapes_layer(shapes) if shapes is not None else [],
                points_from_layer(centres)[0] if centres is not None else self.session.state(name).synced_centres,
            )
        except ValueError as err:
            notify_error(str(err))
            return None
        objects = {i: meta.get(i, ObjectMeta(i)) for i in bounding_boxes(merged)}
        self._show(name, merged, objects, extra_points(self.viewer, name))
        return merged, self._objects(merged, role_layer(self.viewer, name, "polygons"))

    def commit(self) -> Any:
        """Sync, then store the annotations (and extra points) of the image in the project."""
        synced = self.sync()
        if synced is None:
            return None
        labels, objects = synced
        layer = self.image.layer()
        shapes = role_layer(self.viewer, layer.name, "polygons")
        try:
            result = self.session.commit(
                layer.name,
                layer_pixels(layer),
                labels,
                objects,
                path=layer_path(layer),
                polygons=polygons_by_id(shapes) if shapes is not None else None,
                points=extra_points(self.viewer, layer.name),
            )
        except (StoreError, ValueError, OSError) as err:
            notify_error(f"Nothing was committed: {err}")
            return None
        notify_info(f"Committed {result.n_objects} objects of {layer.name}: {_summary(result.corrections.summary())}.")
        return result

    def restore(self, quiet: bool = False) -> bool:
        """Show the committed annotations of the chosen image; False when there are none."""
        try:
            layer = self.image.layer()
            found = self.session.restore(layer_pixels(layer))
        except (StoreError, ValueError, OSError) as err:
            notify_error(str(err))
            return False
        if found is None:
            if not quiet:
                notify_info(f"Nothing committed yet for {layer.name}.")
            return False
        labels, objects, points = found
        self._show(layer.name, labels, objects, points)
        notify_info(f"Loaded the committed annotations of {layer.name} ({len(objects)} objects).")
        return True

    def _on_open_project(self) -> None:
        self.session.open_project(str(self.project.value))
        try:
            _ = self.session.store
        except (StoreError, ValueError, OSError) as err:
            notify_error(str(err))
            return
        notify_info(f"Project: {self.project.value}")

    def _on_set_class(self) -> None:
        try:
            _, labels_layer, shapes = self._layers()
        except ValueError as err:
            notify_error(str(err))
            return
        if shapes is None or not shapes.selected_data:
            notify_error("Select polygons first (Shapes layer, selection tool).")
            return
        features = shapes.features.copy()
        for index in shapes.selected_data:
            features.loc[index, "class"] = self.class_name.value.strip() or DEFAULT_CLASS
        shapes.features = features
        self._update_count(objects_from_shapes_layer(shapes, np.asarray(labels_layer.data)))

    def _edit_selected(self, operation: str) -> None:
        try:
            name, labels_layer, shapes = self._layers()
        except ValueError as err:
            notify_error(str(err))
            return
        ids = self._selected_ids(shapes, labels_layer)
        if not ids or (operation == "merge" and len(ids) < 2):
            notify_error("Select objects first (two or more to merge): polygons in select mode, or a label.")
            return
        labels = np.asarray(labels_layer.data, np.int32)
        meta = self._objects(labels, shapes)
        labels = merge_labels(labels, ids)[0] if operation == "merge" else remove_labels(labels, ids)
        objects = {i: meta.get(i, ObjectMeta(i)) for i in bounding_boxes(labels)}
        self._show(name, labels, objects, extra_points(self.viewer, name))

    def _on_merge(self) -> None:
        self._edit_selected("merge")

    def _on_delete(self) -> None:
        self._edit_selected("delete")


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "no changes"
