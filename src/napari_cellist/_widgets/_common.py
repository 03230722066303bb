"""Helpers shared by the dock widgets: image layer choices, image data, project folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox

from ..images import prepare_grey
from ..layers import layer_name, points_from_layer, polygons_by_id


def image_layer_names(viewer: Any) -> list[str]:
    """Names of the Image layers that are not the plugin's own outputs."""
    from napari.layers import Image

    return [
        layer.name
        for layer in viewer.layers
        if isinstance(layer, Image) and "cellist_image" not in layer.metadata
    ]


class ImageLayerChoice(ComboBox):
    """A combo box of the viewer's image layers that follows layers being added and removed."""

    def __init__(self, viewer: Any, label: str = "image") -> None:
        super().__init__(label=label, choices=self._choices, tooltip="The image to work on.")
        self._viewer = viewer
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        viewer.layers.events.reordered.connect(self._refresh)
        self._refresh()

    def _choices(self, _widget: Any = None) -> list[str]:
        viewer = getattr(self, "_viewer", None)
        return image_layer_names(viewer) if viewer is not None else []

    def _refresh(self, _event: Any = None) -> None:
        self.reset_choices()
        if self.value is None and self.choices:
            self.value = self.choices[-1]

    def layer(self) -> Any:
        """The chosen image layer.

        Raises
        ------
        ValueError
            When there is no image layer.
        """
        if not self.value or self.value not in self._viewer.layers:
            raise ValueError("Open an image first (drag a file into napari or use File > Open Sample > Cellist).")
        return self._viewer.layers[self.value]


def layer_pixels(layer: Any) -> np.ndarray:
    """Full-resolution pixels of an image layer as a numpy array."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def grey_pixels(layer: Any, channel: int | None = None) -> np.ndarray:
    """Grey spatial float32 pixels of an image layer (see :func:`prepare_grey`)."""
    return prepare_grey(layer_pixels(layer), rgb=bool(layer.rgb), channel=channel)


def layer_path(layer: Any) -> str | None:
    """File the image layer was read from, if known."""
    path = layer.metadata.get("cellist_path") or getattr(getattr(layer, "source", None), "path", None)
    return str(path) if path else None


def role_layer(viewer: Any, image_name: str, role: str) -> Any | None:
    """The plugin's ``role`` layer of an image, if it exists."""
    name = layer_name(image_name, role)
    return viewer.layers[name] if name in viewer.layers else None


def models_folder(project: Any) -> Path:
    """Where checkpoints of a project are written (``<project>/models``)."""
    text = str(project)
    if "://" in text:
        return Path.home() / ".cellist" / "models"
    path = Path(text)
    return (path.parent if path.suffix in (".sqlite", ".sqlite3", ".db") else path) / "models"


def snapshot(viewer: Any, session: Any, image_name: str) -> None:
    """Tell the session what the polygons and centres layers show now (after they were set)."""
    shapes = role_layer(viewer, image_name, "polygons")
    points = role_layer(viewer, image_name, "centres")
    session.mark_synced(
        image_name,
        polygons_by_id(shapes) if shapes is not None else {},
        points_from_layer(points)[0] if points is not None else (),
    )


def extra_points(viewer: Any, image_name: str) -> np.ndarray | None:
    """Points the user added to the centres layer (no object, feature id 0)."""
    points = role_layer(viewer, image_name, "centres")
    if points is None:
        return None
    ids, coordinates = points_from_layer(points)
    return coordinates[ids <= 0]
