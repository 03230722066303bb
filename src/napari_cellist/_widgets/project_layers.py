"""The layers of the image the Project panel shows: add them, reuse them for the next image,
remove them, and take the draft snapshot of what they show.

Opening the next image reuses the previous image's layers (renamed, new data) when they fit,
because napari removes a layer in ~0.3 s; layers that do not fit (another dimensionality,
RGB-ness) are removed instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..layers import ROLES, labels_to_layer_tuples, layer_name, set_layers
from ..project_queue import OpenedImage
from ..store import DraftSnapshot
from ..types import DEFAULT_CLASS
from ._live import LiveLink


def show_image(
    viewer: Any,
    session: Any,
    opened: OpenedImage,
    name: str,
    pixels: np.ndarray,
    kept: dict[str, Any],
    on_edit: Callable[[], None],
) -> LiveLink:
    """Show ``opened`` in the viewer and link its layers live.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    session : LabellingSession
        The session (outline tolerance, per-image state).
    opened : OpenedImage
        What to show (labels not None).
    name : str
        The image's name (the image layer's name; annotation layers are named after it).
    pixels : np.ndarray
        The image ``(Y, X)``, ``(Y, X, C)`` RGB(A) or ``(Z, Y, X)``.
    kept : dict
        Layers of the previous image by role (see :func:`close_layers`), reused when they fit.
    on_edit : callable
        Called after each user edit (writes the draft).

    Returns
    -------
    LiveLink
        The link that keeps labels, polygons and centres consistent.
    """
    reuse_layers(viewer, kept, name, pixels, opened.labels)
    if name not in viewer.layers:
        rgb = pixels.ndim == 3 and pixels.shape[-1] in (3, 4)
        viewer.add_image(pixels, name=name, rgb=rgb)
    viewer.layers[name].metadata["cellist_image"] = name
    tuples = labels_to_layer_tuples(
        opened.labels,
        opened.objects,
        name,
        source="model" if opened.source == "prediction" else "manual",
        tolerance=session.tolerance,
        extra_points=opened.points,
    )
    layers = set_layers(viewer, tuples)
    by_type = {type(layer).__name__.lower(): layer for layer in layers}
    state = session.state(name)
    state.image_id = opened.image_id
    state.committed = opened.source == "committed"
    return LiveLink(
        by_type["labels"],
        by_type.get("shapes"),
        by_type.get("points"),
        on_edit=on_edit,
        tolerance=session.tolerance,
    )


def close_layers(viewer: Any, name: str, keep: bool) -> dict[str, Any]:
    """Remove the layers of image ``name``; with ``keep``, its image and annotation layers are
    left (read-only) and returned by role, for the next image to reuse."""
    layers = [
        layer
        for layer in viewer.layers
        if layer.name == name or layer.metadata.get("cellist_image") == name
    ]
    kept = {}
    for layer in layers:
        layer_role = role(layer, name)
        if keep and layer_role is not None:
            kept[layer_role] = layer
            layer.editable = False  # edits between two images would be lost
        else:
            viewer.layers.remove(layer)
    return kept


def reuse_layers(
    viewer: Any, kept: dict[str, Any], name: str, pixels: np.ndarray, labels: np.ndarray
) -> None:
    """Give the kept layers of the previous image the new image's names and data; layers
    that do not fit (another dimensionality, RGB-ness) are removed instead."""
    image = kept.get("image")
    rgb = pixels.ndim == 3 and pixels.shape[-1] in (3, 4)
    fits = image is not None and image.rgb == rgb and image.data.ndim == pixels.ndim
    fits = fits and kept.get("labels") is not None and kept["labels"].data.ndim == labels.ndim
    for layer_role, layer in kept.items():
        if not fits:
            viewer.layers.remove(layer)
            continue
        layer.name = name if layer_role == "image" else layer_name(name, layer_role)
        layer.metadata["cellist_image"] = name
        layer.editable = True
    if fits:
        image.data = pixels
        image.reset_contrast_limits()
        kept["labels"].data = np.asarray(labels, np.int32)  # a new image: a new undo history


def role(layer: Any, image_name: str) -> str | None:
    """ "image", "labels", "polygons" or "centres" for the layers of an image (None: another)."""
    if layer.name == image_name:
        return "image"
    return next((r for r in ROLES if layer.name == layer_name(image_name, r)), None)


def snapshot(link: LiveLink, opened: OpenedImage, n_edits_before: int) -> DraftSnapshot:
    """The draft of what the linked layers show now (a copy of the label map, the classes set
    on polygons, points without a mask), counting ``n_edits_before`` + the link's edits."""
    shapes, points = link.shapes_layer, link.points_layer
    classes = {}
    if shapes is not None and "class" in shapes.features:
        ids = shapes.features["id"].to_numpy(np.int64)
        classes = {
            int(i): str(c)
            for i, c in zip(ids, shapes.features["class"], strict=True)
            if i > 0 and c != DEFAULT_CLASS
        }
    extra = None
    if points is not None and "id" in points.features:
        keep = points.features["id"].to_numpy(np.int64) == 0
        extra = np.asarray(points.data, float)[keep] if keep.any() else None
    return DraftSnapshot(
        np.array(link.labels, np.int32, copy=True),
        classes=classes,
        points=extra,
        based_on_commit=opened.based_on_commit,
        prediction_id=opened.prediction_id,
        n_edits=n_edits_before + link.n_edits,
        n_objects=len(link.index),
    )


__all__ = ["close_layers", "reuse_layers", "role", "show_image", "snapshot"]
