"""layers.paint_labels: a Labels layer updated as one undoable edit (napari layer models only)."""

import numpy as np
from napari.layers import Labels

from napari_cellist import layers


def test_paint_labels_is_one_undoable_edit():
    before = np.zeros((32, 32), np.int32)
    before[2:8, 2:8] = 1
    layer = Labels(before.copy())
    after = before.copy()
    after[2:8, 2:8] = 0
    after[20:30, 20:30] = 2
    assert layers.paint_labels(layer, after) == 36 + 100
    assert np.array_equal(layer.data, after)
    layer.undo()
    assert np.array_equal(layer.data, before)
    layer.redo()
    assert np.array_equal(layer.data, after)


def test_large_changes_replace_the_data(monkeypatch):
    monkeypatch.setattr(layers, "MAX_UNDO_PIXELS", 10)
    layer = Labels(np.zeros((16, 16), np.int32))
    data = layer.data
    layers.paint_labels(layer, np.ones((16, 16), np.int32))
    assert layer.data is not data and layer.data.all()
    layers.paint_labels(layer, np.zeros((8, 8), np.int32))  # another shape: replaced as well
    assert layer.data.shape == (8, 8)


def _three_squares() -> np.ndarray:
    labels = np.zeros((40, 40), np.int32)
    labels[2:8, 2:8] = 1
    labels[12:20, 12:20] = 2
    labels[25:35, 25:35] = 3
    return labels


def test_a_small_edit_touches_only_the_changed_shapes():
    from napari.layers import Shapes

    labels = _three_squares()
    data, kwargs, _ = layers.labels_to_layer_tuples(labels, {}, "img")[1]
    shapes = Shapes(data, shape_type="polygon", features=kwargs["features"])
    kept = shapes.data[2]
    edited = labels.copy()
    edited[edited == 1] = 0  # object 1 deleted
    edited[30:38, 2:10] = 4  # object 4 added
    data, kwargs, _ = layers.labels_to_layer_tuples(edited, {}, "img")[1]
    assert layers.update_shapes_incrementally(shapes, data, kwargs["features"])
    assert list(shapes.features["id"]) == [2, 3, 4]
    assert shapes.data[1] is kept  # object 3's shape was left as it was
    assert np.allclose(shapes.data[2], data[2], atol=1e-4)
    many = np.arange(1, 401, dtype=np.int32).reshape(20, 20).repeat(2, 0).repeat(2, 1)
    data, kwargs, _ = layers.labels_to_layer_tuples(many, {}, "img")[1]
    assert not layers.update_shapes_incrementally(shapes, data, kwargs["features"])  # too many


def test_no_polygons_above_the_limit_but_every_centre():
    labels = _three_squares()
    tuples = layers.labels_to_layer_tuples(labels, {}, "img", max_polygons=2)
    (polygons, shape_kwargs, _), (points, point_kwargs, _) = tuples[1], tuples[2]
    assert polygons == [] and len(shape_kwargs["features"]) == 0
    assert list(point_kwargs["features"]["id"]) == [1, 2, 3] and len(points) == 3
    assert len(layers.labels_to_layer_tuples(labels, {}, "img")[1][0]) == 3
