"""Helpers shared by the dock widgets: the dock widget base, image and labels layer choices,
image data, project folders, restoring committed annotations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container

from ..images import prepare_grey
from ..layers import (
    MAX_POLYGONS,
    as_shown,
    labels_to_layer_tuples,
    layer_name,
    points_from_layer,
    polygons_by_id,
    set_layers,
)
from ._layout import ParentWatcher, fit_labels
from ._session import plain_viewer, session_for

logger = logging.getLogger(__name__)
COLOUR_NAMES = ("red", "green", "blue", "alpha")
MEAN_OF_COLOURS = "mean of the colours"


class Connections:
    """The callbacks a widget connected to the viewer (or session), to disconnect on close."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], Any]] = []

    def connect(self, emitter: Any, callback: Callable[..., Any]) -> None:
        """``emitter.connect(callback)``, remembered."""
        emitter.connect(callback)
        self._undo.append(lambda: emitter.disconnect(callback))

    def append(self, listeners: list[Any], callback: Callable[..., Any]) -> None:
        """``listeners.append(callback)`` (a plain list of listeners), remembered."""
        listeners.append(callback)
        self._undo.append(lambda: listeners.remove(callback))

    def __len__(self) -> int:
        return len(self._undo)

    def disconnect_all(self) -> None:
        """Disconnect every remembered callback."""
        for undo in self._undo:
            try:
                undo()
            except (TypeError, ValueError, RuntimeError) as err:  # already gone with its emitter
                logger.debug("Could not disconnect a listener: %s", err)
        self._undo.clear()


class DockWidget(Container):
    """Base of the Cellist dock widgets: the viewer and its session, a scrolling dock, readable
    labels, and listeners that are disconnected when the widget is closed (or undocked).

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari hands plugin widgets a proxy of it; see :func:`plain_viewer`).
    scrollable : bool
        Wrap the widget in a scroll area (top-level dock widgets); parts of a widget pass False.
    """

    def __init__(self, napari_viewer: Any, scrollable: bool = True, **kwargs: Any) -> None:
        super().__init__(scrollable=scrollable, **kwargs)
        self.viewer = plain_viewer(napari_viewer)
        self.session = session_for(self.viewer)
        self.connections = Connections()
        self._docked = False
        from ._restore import install_restore_hook

        install_restore_hook(self.viewer)
        if scrollable:  # rows keep their height; the space left goes below them
            self.root_native_widget.widget().layout().addStretch(1)
        self._parent_watcher = ParentWatcher(self.native, self._on_parent_changed)

    @property
    def native(self) -> Any:
        """The Qt widget napari docks: the scroll area around the controls (when scrollable).

        napari docks a magicgui widget's ``native``, which for a scrollable Container is the
        controls without their scroll area; this gives napari the scroll area itself.
        """
        return self.root_native_widget

    def listen(self, emitter: Any, callback: Callable[..., Any]) -> None:
        """Connect ``callback`` to an event of the viewer; disconnected on :meth:`close`."""
        self.connections.connect(emitter, callback)

    def listen_versions(self, callback: Callable[[str, int], None]) -> None:
        """Be told of new model versions (see ``LabellingSession.version_listeners``)."""
        self.connections.append(self.session.version_listeners, callback)

    def fit_labels(self) -> None:
        """Keep every label of the widget readable (call after building controls)."""
        fit_labels(self.native)

    def _on_parent_changed(self, parent: Any) -> None:
        if parent is not None:
            self._docked = True
        elif self._docked:  # napari's remove_dock_widget un-parents the widget
            self.disconnect_listeners()

    def disconnect_listeners(self) -> None:
        """Stop following the viewer (and any child widget that listens too)."""
        self.connections.disconnect_all()
        for child in self._children():
            child.disconnect_listeners()

    def _children(self) -> list[Any]:
        """The widgets inside (at any depth) that listen to the viewer themselves."""
        found, stack = [], list(self)
        while stack:
            widget = stack.pop()
            if isinstance(widget, (DockWidget, _LayerChoice)):
                found.append(widget)
            elif isinstance(widget, Container):
                stack.extend(widget)
        return found

    def close(self) -> None:
        """Disconnect the listeners, then close the widget."""
        self.disconnect_listeners()
        super().close()


def image_layer_names(viewer: Any) -> list[str]:
    """Names of the Image layers that are not the plugin's own outputs."""
    from napari.layers import Image

    return [
        layer.name
        for layer in viewer.layers
        if isinstance(layer, Image) and "cellist_image" not in layer.metadata
    ]


class _LayerChoice(ComboBox):
    """A combo box of some of the viewer's layers that follows layers being added and removed."""

    hint = "Open an image first (drag a file into napari or use File > Open Sample > Cellist)."

    def __init__(self, viewer: Any, label: str, tooltip: str, nullable: bool = False) -> None:
        super().__init__(label=label, choices=self._choices, tooltip=tooltip, nullable=nullable)
        self._viewer = viewer
        self.connections = Connections()
        for event in ("inserted", "removed", "reordered"):
            self.connections.connect(getattr(viewer.layers.events, event), self._refresh)
        self._refresh()

    def names(self) -> list[str]:
        """The names offered."""
        raise NotImplementedError

    def _choices(self, _widget: Any = None) -> list[str]:
        return self.names() if getattr(self, "_viewer", None) is not None else []

    def _refresh(self, _event: Any = None) -> None:
        self.reset_choices()
        if self.value is None and self.choices:
            self.value = self.choices[-1]

    def disconnect_listeners(self) -> None:
        """Stop following the layer list."""
        self.connections.disconnect_all()

    def layer(self) -> Any:
        """The chosen layer.

        Raises
        ------
        ValueError
            When there is none.
        """
        if not self.value or self.value not in self._viewer.layers:
            raise ValueError(self.hint)
        return self._viewer.layers[self.value]


class ImageLayerChoice(_LayerChoice):
    """The image to work on."""

    def __init__(self, viewer: Any, label: str = "image") -> None:
        super().__init__(viewer, label, "The image to work on.")

    def names(self) -> list[str]:
        """Image layers that are not the plugin's own outputs."""
        return image_layer_names(self._viewer)


class LabelsLayerChoice(_LayerChoice):
    """Which Labels layer holds an image's annotations: any Labels layer of the image's shape
    (the image's own ``<image> labels``, a ground truth, a layer painted by hand)."""

    hint = "The image has no labels yet: run a model, or choose a Labels layer."

    def __init__(self, viewer: Any, image: ImageLayerChoice, label: str = "labels") -> None:
        self._image = image
        super().__init__(
            viewer, label, "The Labels layer holding the annotations of the image.", nullable=True
        )
        image.changed.connect(self.follow)
        self.follow(image.value)

    def names(self) -> list[str]:
        """Labels layers of the chosen image's spatial shape (not the SAM previews)."""
        from napari.layers import Labels

        try:
            shape = layer_pixels(self._image.layer()).shape[: self._image.layer().ndim]
        except ValueError:
            return []
        return [
            layer.name
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            and not layer.name.endswith(" sam preview")
            and tuple(layer.data.shape) == tuple(shape)
        ]

    def _refresh(self, _event: Any = None) -> None:
        self.reset_choices()
        if self.value is None:
            self.follow(self._image.value)

    def follow(self, image_name: str | None) -> None:
        """Choose the image's own ``<image> labels`` layer when it has one (else none)."""
        self.reset_choices()
        own = layer_name(image_name, "labels") if image_name else None
        self.value = own if own in self.choices else None


def channel_names(layer: Any) -> list[str]:
    """Channel choices of an image layer: the colours of an RGB(A) image, else ``["grey"]``."""
    if layer is None or not getattr(layer, "rgb", False):
        return ["grey"]
    n = int(np.shape(layer_pixels(layer))[-1])
    return [MEAN_OF_COLOURS, *(f"{COLOUR_NAMES[i]} ({i})" for i in range(n))]


def channel_index(choice: str | None) -> int | None:
    """The channel number of a :func:`channel_names` choice (None: grey or the mean)."""
    if not choice or "(" not in choice:
        return None
    return int(choice.rsplit("(", 1)[1].rstrip(")"))


def layer_pixels(layer: Any) -> np.ndarray:
    """Full-resolution pixels of an image layer as a numpy array."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def grey_pixels(layer: Any, channel: int | None = None) -> np.ndarray:
    """Grey spatial float32 pixels of an image layer (see :func:`prepare_grey`)."""
    return prepare_grey(layer_pixels(layer), rgb=bool(layer.rgb), channel=channel)


def layer_path(layer: Any) -> str | None:
    """File the image layer was read from, if known."""
    path = layer.metadata.get("cellist_path") or getattr(
        getattr(layer, "source", None), "path", None
    )
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


def annotation_tuples(
    session: Any,
    image_name: str,
    labels: np.ndarray,
    objects: Any,
    points: Any,
    scale: tuple[float, ...],
) -> list[Any]:
    """Layer data of an image's annotations (outlines, centres, features); for a worker."""
    return labels_to_layer_tuples(
        labels,
        objects,
        image_name,
        scale=scale,
        tolerance=session.tolerance,
        extra_points=points,
        max_polygons=MAX_POLYGONS,
    )


def image_scale(viewer: Any, image_name: str, ndim: int) -> tuple[float, ...]:
    """The spatial scale (pixel size) of the last ``ndim`` axes of an image layer."""
    return tuple(viewer.layers[image_name].scale)[-ndim:]


def set_annotation_layers(viewer: Any, session: Any, image_name: str, tuples: list[Any]) -> None:
    """Hand prebuilt layer data to napari (in place where the layers exist) and remember the
    polygons and centres as synced. GUI thread; the data is built by :func:`annotation_tuples`."""
    set_layers(viewer, tuples)
    snapshot_tuples(session, image_name, tuples)


def snapshot_tuples(session: Any, image_name: str, tuples: list[Any]) -> None:
    """Tell the session the polygons and centres just handed to napari (read from the layer
    data built in the worker rather than from the layers, which costs a pass over every shape)."""
    session.mark_synced(image_name, *tuple_polygons_and_centres(tuples))


def tuple_polygons_and_centres(tuples: list[Any]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """``({id: (N, 2) polygon}, centre ids)`` in layer tuples of :func:`annotation_tuples`."""
    polygons: dict[int, np.ndarray] = {}
    centre_ids = np.zeros(0, np.int64)
    for data, kwargs, layer_type in tuples:
        ids = kwargs.get("features", {}).get("id", ())
        if layer_type == "shapes":
            polygons = {int(i): as_shown(v) for i, v in zip(ids, data, strict=True)}
        elif layer_type == "points":
            centre_ids = np.asarray(ids, np.int64)
    return polygons, centre_ids


def show_annotations(
    viewer: Any, session: Any, image_name: str, labels: np.ndarray, objects: Any, points: Any
) -> None:
    """Write labels (+ polygons, centres) of an image into its layers, in place where they
    exist, on the calling thread (the widgets build the data in a worker instead)."""
    scale = image_scale(viewer, image_name, labels.ndim)
    tuples = annotation_tuples(session, image_name, labels, objects, points, scale)
    set_annotation_layers(viewer, session, image_name, tuples)
