"""napari layer data <-> core types. No Qt: napari layer *models* only, imported lazily.

Naming: for an image layer ``NAME`` the plugin keeps ``NAME labels`` (Labels), ``NAME polygons``
(Shapes, one polygon per object, features ``id``, ``class``, ``score``, ``source``) and
``NAME centres`` (Points, feature ``id``). Each carries ``metadata["cellist_image"] = NAME``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .geometry import centres, outlines
from .types import DEFAULT_CLASS, ObjectMeta, Prediction

logger = logging.getLogger(__name__)
LayerTuple = tuple[Any, dict[str, Any], str]
ROLES = ("labels", "polygons", "centres")
ELLIPSE_VERTICES = 48
#: larger changes to a Labels layer are not undoable (about 0.5 GB of napari history in 3D)
MAX_UNDO_PIXELS = 2**24
#: edge colours of the polygons, one per class in order of appearance (the default class first)
#: objects beyond which no polygons are drawn (napari's Shapes layer would freeze the viewer
#: for seconds: see docs/benchmarks.md, viewer responsiveness)
MAX_POLYGONS = 1000
#: a Shapes update that changes more shapes than this re-sets the layer instead of editing it
MAX_INCREMENTAL_SHAPES = 200
CLASS_COLOURS = ("yellow", "cyan", "magenta", "lime", "orange", "deepskyblue", "red", "white")


def layer_name(image_name: str, role: str) -> str:
    """Name of the ``role`` layer ("labels", "polygons" or "centres") of an image layer."""
    if role not in ROLES:
        raise ValueError(f"Unknown layer role {role!r}; one of {ROLES}.")
    return f"{image_name} {role}"


def shapes_features(
    polygons: Mapping[int, np.ndarray], objects: Mapping[int, ObjectMeta], source: str
) -> Any:
    """Feature table (pandas) for the polygons, in the order of ``polygons``.

    Columns have explicit dtypes so that an empty table still takes text classes.
    """
    import pandas as pd

    ids = list(polygons)
    meta = [objects.get(i, ObjectMeta(i, source=source)) for i in ids]
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype="int64"),
            "class": pd.Series([m.class_name for m in meta], dtype="object"),
            "score": pd.Series([float(m.score) for m in meta], dtype="float64"),
            "source": pd.Series([m.source for m in meta], dtype="object"),
        }
    )


def labels_to_layer_tuples(
    labels: np.ndarray,
    objects: Mapping[int, ObjectMeta],
    image_name: str,
    *,
    source: str = "manual",
    scale: Sequence[float] | None = None,
    tolerance: float = 1.0,
    extra_points: np.ndarray | None = None,
    max_polygons: int | None = None,
) -> list[LayerTuple]:
    """Labels, Shapes (2D only) and Points layer data for a label map.

    napari builds every shape in Python on the GUI thread (0.3-0.9 ms a polygon, for each
    update and redraw), so above ``max_polygons`` objects (the widgets pass :data:`MAX_POLYGONS`)
    the Shapes layer is left empty: the Labels layer shows and edits the objects.

    Parameters
    ----------
    labels : np.ndarray
        int ``(Y, X)`` or ``(Z, Y, X)`` label map.
    objects : mapping
        Metadata per label id (missing ids get defaults).
    image_name : str
        Name of the image layer these belong to.
    scale : sequence of float, optional
        The image layer's scale (pixel size), copied to the new layers.
    tolerance : float
        Polygon simplification in pixels.
    extra_points : np.ndarray, optional
        ``(N, ndim)`` points that mark objects without a mask (feature ``id`` 0).
    max_polygons : int, optional
        Most objects drawn as polygons (None: every object; 0: none).
    """
    labels = np.asarray(labels, np.int32)
    common: dict[str, Any] = {"metadata": {"cellist_image": image_name}}
    if scale is not None:
        common["scale"] = tuple(scale)
    tuples: list[LayerTuple] = [
        (labels, {**common, "name": layer_name(image_name, "labels"), "opacity": 0.5}, "labels")
    ]
    ids, points = centres(labels)
    if labels.ndim == 2:
        polygons: dict[int, np.ndarray] = {}
        if max_polygons is None or len(ids) <= max_polygons:
            polygons, ids, points = outlines(labels, tolerance)  # with centres, in one pass
        else:
            logger.info(
                "%d objects in %s: no polygons drawn (more than %d); the Labels layer shows them",
                len(ids),
                image_name,
                max_polygons,
            )
        tuples.append(
            (
                list(polygons.values()),
                {
                    **common,
                    "name": layer_name(image_name, "polygons"),
                    "shape_type": "polygon",
                    "features": shapes_features(polygons, objects, source),
                    "feature_defaults": {
                        "id": 0,
                        "class": DEFAULT_CLASS,
                        "score": 1.0,
                        "source": "manual",
                    },
                    "edge_color": "class",
                    "edge_color_cycle": list(CLASS_COLOURS),
                    "face_color": "transparent",
                    "edge_width": 1.5,
                    "opacity": 0.9,
                },
                "shapes",
            )
        )
    if extra_points is not None and len(extra_points):
        points = np.concatenate([points, np.asarray(extra_points, float).reshape(-1, labels.ndim)])
        ids = np.concatenate([ids, np.zeros(len(extra_points), ids.dtype)])
    tuples.append(
        (
            points,
            {
                **common,
                "name": layer_name(image_name, "centres"),
                "features": {"id": np.asarray(ids, np.int64)},
                "feature_defaults": {"id": 0},
                "size": 5,
                "face_color": "magenta",
            },
            "points",
        )
    )
    return tuples


def prediction_to_layer_tuples(
    prediction: Prediction,
    image_name: str,
    *,
    scale: Sequence[float] | None = None,
    tolerance: float = 1.0,
    max_polygons: int | None = None,
) -> list[LayerTuple]:
    """Layer data for a model's Prediction (plus one Image layer per ``extras`` entry)."""
    tuples = labels_to_layer_tuples(
        prediction.labels,
        prediction.objects,
        image_name,
        source=prediction.source,
        scale=scale,
        tolerance=tolerance,
        max_polygons=max_polygons,
    )
    for key, extra in prediction.extras.items():
        kwargs: dict[str, Any] = {
            "name": f"{image_name} {key}",
            "metadata": {"cellist_image": image_name},
            "blending": "additive",
            "visible": False,
        }
        if scale is not None:
            kwargs["scale"] = tuple(scale)
        tuples.append((extra, kwargs, "image"))
    return tuples


def shape_to_polygon(vertices: np.ndarray, shape_type: str) -> np.ndarray:
    """``(N, 2)`` polygon of a napari shape (ellipses, given by 4 box corners, are sampled)."""
    vertices = np.asarray(vertices, float)[:, -2:]
    if shape_type != "ellipse":
        return vertices
    centre = vertices.mean(axis=0)
    half_a = (vertices[1] - vertices[0]) / 2.0
    half_b = (vertices[3] - vertices[0]) / 2.0
    angles = np.linspace(0, 2 * np.pi, ELLIPSE_VERTICES, endpoint=False)
    return centre + np.outer(np.cos(angles), half_a) + np.outer(np.sin(angles), half_b)


def polygons_from_shapes_layer(layer: Any) -> list[tuple[int, np.ndarray]]:
    """``[(id, (N, 2) vertices)]`` of a Shapes layer; lines and paths are skipped."""
    ids = _feature_column(layer, "id", len(layer.data), 0)
    out = []
    for label_id, vertices, shape_type in zip(ids, layer.data, layer.shape_type, strict=True):
        if shape_type in ("line", "path") or len(vertices) < 3:
            continue
        out.append((int(label_id), shape_to_polygon(vertices, shape_type)))
    return out


def polygons_by_id(layer: Any) -> dict[int, np.ndarray]:
    """``{id: vertices}`` of the objects' polygons exactly as the Shapes layer holds them now."""
    return {i: np.asarray(v, float) for i, v in polygons_from_shapes_layer(layer) if i > 0}


def shape_metadata(layer: Any) -> dict[int, tuple[str, float, str]]:
    """``{id: (class, score, source)}`` from a Shapes layer's features (cheap: no geometry).

    Read on the GUI thread; :func:`objects_from_metadata` turns it into objects in a worker.
    """
    n = len(layer.data)
    ids = _feature_column(layer, "id", n, 0)
    classes = _feature_column(layer, "class", n, DEFAULT_CLASS)
    scores = _feature_column(layer, "score", n, 1.0)
    sources = _feature_column(layer, "source", n, "manual")
    return {
        int(i): (str(c), float(s), str(src))
        for i, c, s, src in zip(ids, classes, scores, sources, strict=True)
    }


def objects_from_shapes_layer(layer: Any, labels: np.ndarray) -> dict[int, ObjectMeta]:
    """Per-object metadata for the ids present in ``labels``, from the Shapes layer features."""
    return objects_from_metadata(shape_metadata(layer), labels)


def objects_from_metadata(
    by_id: Mapping[int, tuple[str, float, str]] | None, labels: np.ndarray
) -> dict[int, ObjectMeta]:
    """Objects of every id in the label map ``labels`` (``(Y, X)`` / ``(Z, Y, X)``), with the
    class, score and source of :func:`shape_metadata` (None or a missing id: the defaults) and
    the box from the label map."""
    from .geometry import bounding_boxes

    by_id = by_id or {}
    default = (DEFAULT_CLASS, 1.0, "manual")
    return {
        i: ObjectMeta(i, score=meta[1], class_name=meta[0], box=box, source=meta[2])
        for i, box in bounding_boxes(labels).items()
        for meta in [by_id.get(i, default)]
    }


def points_from_layer(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, coordinates)`` of a centres Points layer; id 0 marks a point without a mask.

    napari gives a new point the features of the selected one, so only the first point with an
    id is that object's centre; later copies are points without a mask (id 0).
    """
    coordinates = np.asarray(layer.data, float).reshape(len(layer.data), layer.ndim)
    ids = np.asarray(_feature_column(layer, "id", len(coordinates), 0), np.int64)
    _, first = np.unique(ids, return_index=True)
    copies = np.ones(len(ids), bool)
    copies[first] = False
    ids[copies] = 0
    return ids, coordinates


def _feature_column(layer: Any, name: str, n: int, default: Any) -> list:
    features = getattr(layer, "features", None)
    if features is not None and name in features and len(features) == n:
        return list(features[name])
    return [default] * n


def set_layers(viewer: Any, tuples: Sequence[LayerTuple]) -> list[Any]:
    """Add each layer, or update the layer of the same name and type in place.

    An updated layer is the same layer object: the user's settings (opacity, brush size,
    colours, visibility) stay, and a Labels layer takes the change as one step of napari's undo
    history (Ctrl+Z brings the previous labels back). Works with the viewer napari hands plugin
    widgets (a proxy) as with the viewer itself.

    Returns the layers, in the order of ``tuples``.
    """
    layers = []
    for data, kwargs, layer_type in tuples:
        name = kwargs["name"]
        existing = viewer.layers[name] if name in viewer.layers else None
        if existing is not None and isinstance(existing, _layer_class(layer_type)):
            _update_layer(existing, data, kwargs, layer_type)
            layer = existing
        else:
            if existing is not None:
                viewer.layers.remove(name)
            layer = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
            if layer_type in ("shapes", "points"):
                keep_new_ids_zero(layer)
        layers.append(layer)
    return layers


def _layer_class(layer_type: str) -> type:
    """napari's layer class of a layer type name ("labels", "shapes", "points", "image")."""
    import napari.layers

    return getattr(napari.layers, layer_type.capitalize())


def keep_new_ids_zero(layer: Any) -> None:
    """Make shapes / points the user adds carry id 0 (new), whatever was selected before.

    napari copies the features of the selected item into the defaults of the next one, which
    would give a drawn polygon or an added point the id of an existing object.
    """

    def reset(_event: Any = None) -> None:
        defaults = layer.feature_defaults
        if "id" in defaults and int(defaults["id"].iloc[0]) != 0:
            layer.feature_defaults = {**{c: defaults[c].iloc[0] for c in defaults}, "id": 0}

    layer.events.feature_defaults.connect(reset)
    reset()


def _update_layer(layer: Any, data: Any, kwargs: Mapping[str, Any], layer_type: str) -> None:
    if layer_type == "shapes":
        if not update_shapes_incrementally(layer, data, kwargs.get("features")):
            layer.data = []  # reset first: features must match the new number of shapes
            if len(data):
                layer.add(data, shape_type="polygon")
            layer.features = kwargs.get("features", {})
            layer.refresh_colors(update_color_mapping=False)  # keep each class's colour
    elif layer_type == "points":
        if not _same_points(layer, data, kwargs.get("features")):
            layer.data = data
            layer.features = kwargs.get("features", {})
    elif layer_type == "labels":
        paint_labels(layer, data)
    else:
        layer.data = data
    if "scale" in kwargs and tuple(layer.scale) != tuple(kwargs["scale"]):
        layer.scale = kwargs["scale"]
    layer.metadata.update(kwargs.get("metadata", {}))


def update_shapes_incrementally(layer: Any, polygons: Sequence[np.ndarray], features: Any) -> bool:
    """Bring a Shapes layer to ``polygons`` (+ their ``features`` table, column ``id``) by
    removing and adding only the shapes that changed; False (nothing done) when that is not a
    small edit (more than :data:`MAX_INCREMENTAL_SHAPES` shapes change, repeated ids, lines).

    napari builds every shape in Python on the GUI thread (about 0.3-0.5 ms a polygon), so
    re-adding thousands of unchanged polygons after a one-object edit freezes the viewer for
    seconds; this touches only the edited ones.
    """
    if features is None or "id" not in features or not len(layer.data):
        return False
    new_ids = [int(i) for i in features["id"]]
    old_ids = [int(i) for i in _feature_column(layer, "id", len(layer.data), 0)]
    positive = [i for i in old_ids if i > 0]
    if len(set(positive)) != len(positive) or len(set(new_ids)) != len(new_ids):
        return False
    if any(t != "polygon" for t in layer.shape_type):
        return False
    new_by_id = dict(zip(new_ids, polygons, strict=True))
    aligned = [new_by_id.get(i) if i > 0 else None for i in old_ids]
    remove = np.flatnonzero(~_same_polygons(layer.data, aligned)).tolist()
    removed = set(remove)
    kept = [label_id for index, label_id in enumerate(old_ids) if index not in removed]
    kept_set = set(kept)
    added = [i for i in new_ids if i not in kept_set]
    if len(remove) + len(added) > MAX_INCREMENTAL_SHAPES:
        return False
    if remove:
        layer.selected_data = set(remove)
        layer.remove_selected()
    if added:
        layer.add([new_by_id[i] for i in added], shape_type="polygon")
    table = features.set_index("id", drop=False).loc[kept + added].reset_index(drop=True)
    shown = layer.features
    if len(shown) != len(table) or not shown.reset_index(drop=True).equals(table):
        layer.features = table
        layer.refresh_colors(update_color_mapping=False)  # keep each class's colour
    return True


def _same_polygons(
    current: Sequence[np.ndarray], wanted: Sequence[np.ndarray | None]
) -> np.ndarray:
    """bool ``(N,)``: polygon ``i`` of ``current`` equals ``wanted[i]`` (None: never), compared
    as napari keeps them (float32), in one vectorised pass over all vertices."""
    n = len(current)
    lengths = np.array([len(v) for v in current], np.int64)
    wanted_lengths = np.array([-1 if w is None else len(w) for w in wanted], np.int64)
    same = lengths == wanted_lengths
    rows = np.flatnonzero(same & (lengths > 0))
    if len(rows):
        before = np.concatenate([np.asarray(current[i], np.float32) for i in rows])
        after = np.concatenate([np.asarray(wanted[i], np.float32) for i in rows])
        vertex_same = (before == after).all(axis=1)
        starts = np.concatenate([[0], np.cumsum(lengths[rows])[:-1]])
        same[rows] = np.logical_and.reduceat(vertex_same, starts)
    return same if n else np.zeros(0, bool)


def as_shown(vertices: np.ndarray) -> np.ndarray:
    """float ``(N, 2)`` vertices as a Shapes layer gives them back (rounded to float32)."""
    return np.asarray(vertices, np.float32).astype(float)


def _same_points(layer: Any, data: np.ndarray, features: Any) -> bool:
    """True when a Points layer already shows ``data`` with the same ``features["id"]``."""
    current = np.asarray(layer.data)
    if features is None or "id" not in features or current.shape != np.shape(data):
        return False
    ids = np.asarray(_feature_column(layer, "id", len(current), 0), np.int64)
    return np.array_equal(current, data) and np.array_equal(ids, np.asarray(features["id"]))


def paint_labels(layer: Any, labels: np.ndarray) -> int:
    """Write ``labels`` into a Labels layer as one undoable edit; returns the pixels changed.

    Only the pixels that differ are written (napari's ``data_setitem`` within one
    ``block_history``), so Ctrl+Z in the viewer restores the previous labels. A label map of
    another shape, or a change of more than :data:`MAX_UNDO_PIXELS` pixels (napari keeps the
    index of every changed pixel), replaces the layer's data and napari starts a new history.
    """
    labels = np.asarray(labels)
    current = layer.data
    if not isinstance(current, np.ndarray) or current.shape != labels.shape:
        layer.data = labels
        return int(labels.size)
    changed = current != labels
    n = int(changed.sum())
    if n > MAX_UNDO_PIXELS:  # napari's history would hold indices of every pixel: replace
        layer.data = labels
        return n
    if n:
        with layer.block_history():
            layer.data_setitem(np.nonzero(changed), labels[changed].astype(current.dtype))
    return n
