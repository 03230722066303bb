"""Layers of the Segment Anything widget: create the prompt layers, read prompts, add objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..labels import next_free_id
from ..layers import (
    labels_to_layer_tuples,
    objects_from_shapes_layer,
    points_from_layer,
    polygons_from_shapes_layer,
    set_layers,
)
from ..models.sam.prompts import rectangle_to_box
from ..types import ObjectMeta
from ._common import extra_points, role_layer, snapshot

COLOURS = {True: "lime", False: "red"}  # object / background clicks


def prompt_layer_names(image_name: str) -> dict[str, str]:
    """Names of the points, box and preview layers of an image layer."""
    return {
        "points": f"{image_name} sam points",
        "box": f"{image_name} sam box",
        "preview": f"{image_name} sam preview",
    }


def ensure_prompt_layers(
    viewer: Any, image_layer: Any, on_change: Callable[[Any], None]
) -> list[Any]:
    """Create the missing prompt layers of ``image_layer``; returns the layers created.

    ``on_change`` is connected to the data events of the points and box layers.
    """
    names = prompt_layer_names(image_layer.name)
    ndim = image_layer.ndim  # napari's spatial dimensions (an RGB axis is not counted)
    common = {
        "scale": tuple(image_layer.scale)[-ndim:],
        "metadata": {"cellist_image": image_layer.name},
    }
    data = image_layer.data[0] if getattr(image_layer, "multiscale", False) else image_layer.data
    created = []
    if names["preview"] not in viewer.layers:
        zeros = np.zeros(data.shape[:ndim], np.int32)
        created.append(viewer.add_labels(zeros, name=names["preview"], opacity=0.6, **common))
    if names["box"] not in viewer.layers:
        box = viewer.add_shapes(
            ndim=ndim,
            name=names["box"],
            edge_color="cyan",
            face_color="transparent",
            edge_width=2,
            **common,
        )
        box.events.data.connect(on_change)
        created.append(box)
    if names["points"] not in viewer.layers:
        points = viewer.add_points(
            ndim=ndim,
            name=names["points"],
            size=8,
            features={"positive": np.zeros(0, bool)},
            **common,
        )
        points.feature_defaults = {"positive": True}
        points.current_face_color = COLOURS[True]
        points.events.data.connect(on_change)
        points.mode = "add"
        created.append(points)
    return created


def read_prompts(
    viewer: Any, names: dict[str, str], plane: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int] | None]:
    """Prompts on one plane.

    Returns
    -------
    points : np.ndarray
        float ``(N, 2)`` ``(row, col)`` of the points on ``plane`` (all points in 2D).
    labels : np.ndarray
        int ``(N,)``: 1 object, 0 background.
    box : tuple or None
        Half-open box of the last rectangle of the box layer.
    """
    points = viewer.layers[names["points"]]
    data = np.asarray(points.data, float).reshape(-1, points.ndim)
    features = points.features
    if "positive" in features and len(features) == len(data):
        positive = np.asarray(features["positive"], bool)
    else:
        positive = np.ones(len(data), bool)
    on_plane = np.ones(len(data), bool) if points.ndim == 2 else np.round(data[:, 0]) == plane
    shapes = viewer.layers[names["box"]]
    rectangles = [
        v for v, kind in zip(shapes.data, shapes.shape_type, strict=True) if kind == "rectangle"
    ]
    box = rectangle_to_box(np.asarray(rectangles[-1])) if rectangles else None
    return data[on_plane][:, -2:], positive[on_plane].astype(int), box


def add_object(
    viewer: Any,
    session: Any,
    image_name: str,
    shape: tuple[int, ...],
    plane: int,
    mask: np.ndarray,
    score: float,
) -> int:
    """Write ``mask`` as a new object (source ``sam``) into the image's Labels/Shapes/Points.

    Pending polygon edits are applied first (as the Annotations widget's sync does); the mask
    takes only pixels no other object holds.

    Parameters
    ----------
    shape : tuple of int
        Spatial shape of the image, used when it has no Labels layer yet.
    plane : int
        Plane of a 3D stack the ``(Y, X)`` ``mask`` belongs to (ignored in 2D).

    Returns
    -------
    int
        The new object's label id.
    """
    labels, objects = _current_annotations(viewer, session, image_name, shape)
    target = labels[plane] if labels.ndim == 3 else labels
    new_id = next_free_id(labels)
    target[mask & (target == 0)] = new_id
    objects[new_id] = ObjectMeta(new_id, score=float(np.clip(score, 0, 1)), source="sam")
    scale = tuple(viewer.layers[image_name].scale)[-labels.ndim :]
    tuples = labels_to_layer_tuples(
        labels,
        objects,
        image_name,
        source="sam",
        scale=scale,
        tolerance=session.tolerance,
        extra_points=extra_points(viewer, image_name),
    )
    set_layers(viewer, tuples)
    snapshot(viewer, session, image_name)
    return new_id


def _current_annotations(
    viewer: Any, session: Any, name: str, shape: tuple[int, ...]
) -> tuple[np.ndarray, dict[int, ObjectMeta]]:
    """The image's labels with pending polygon / centre edits applied, and per-object metadata."""
    labels_layer = role_layer(viewer, name, "labels")
    if labels_layer is None:
        return np.zeros(shape, np.int32), {}
    shapes = role_layer(viewer, name, "polygons")
    centres = role_layer(viewer, name, "centres")
    before = np.asarray(labels_layer.data, np.int32)
    meta = objects_from_shapes_layer(shapes, before) if shapes is not None else {}
    labels = session.sync(
        name,
        before,
        polygons_from_shapes_layer(shapes) if shapes is not None else [],
        points_from_layer(centres)[0]
        if centres is not None
        else session.state(name).synced_centres,
    )
    labels = np.array(labels, np.int32)  # a copy: the layer's data is not edited in place
    ids = [int(i) for i in np.unique(labels) if i]
    return labels, {i: meta.get(i, ObjectMeta(i)) for i in ids}
