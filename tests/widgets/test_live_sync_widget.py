"""LiveLink in a real napari viewer: painting, polygon edits and centre deletes keep the
Labels, Shapes and Points layers consistent, edit by edit, and each edit is reported."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellist._widgets._live import LiveLink
from napari_cellist.layers import labels_to_layer_tuples, set_layers


def _grid(n_side: int = 4) -> np.ndarray:
    labels = np.zeros((20 * n_side, 20 * n_side), np.int32)
    for k in range(n_side * n_side):
        r, c = divmod(k, n_side)
        labels[20 * r + 4 : 20 * r + 14, 20 * c + 4 : 20 * c + 14] = k + 1
    return labels


@pytest.fixture
def linked(make_napari_viewer):
    viewer = make_napari_viewer()
    labels = _grid()
    layers = set_layers(viewer, labels_to_layer_tuples(labels, {}, "img"))
    edits = []
    link = LiveLink(*layers, on_edit=lambda: edits.append(1))
    return link, edits


def _ids(layer) -> set[int]:
    return set(layer.features["id"].tolist())


def test_painting_a_new_object_adds_its_outline_and_centre(linked, qtbot):
    link, edits = linked
    labels_layer, shapes, points = link.labels_layer, link.shapes_layer, link.points_layer
    labels_layer.brush_size = 7
    labels_layer.paint((17, 17), 99)  # a new object in the gap between four squares
    assert (labels_layer.data == 99).sum() > 20
    assert 99 in link.index.boxes and link.pending == {99}  # label side now, layers deferred
    qtbot.waitUntil(lambda: not link.pending, timeout=2000)  # the stroke-end timer
    assert 99 in _ids(shapes) and 99 in _ids(points)
    centre = np.asarray(points.data)[list(points.features["id"]).index(99)]
    np.testing.assert_allclose(centre, np.argwhere(labels_layer.data == 99).mean(0))
    assert edits == [1] and link.n_edits == 1
    assert link.object_status() == {"untouched": 16, "edited": 0, "added": 1}


def test_erasing_an_object_removes_its_outline_and_centre(linked):
    link, _ = linked
    layer = link.labels_layer
    layer.fill((8, 8), 0)  # the bucket fill with 0 erases object 1
    link.flush()
    assert not (layer.data == 1).any()
    assert 1 not in _ids(link.shapes_layer) and 1 not in _ids(link.points_layer)
    assert len(link.shapes_layer.data) == 15 and 1 not in link.index.boxes


def test_drawing_a_polygon_writes_a_new_object(linked):
    link, edits = linked
    shapes = link.shapes_layer
    square = np.array([[62.0, 62.0], [62.0, 78.0], [78.0, 78.0], [78.0, 62.0]])
    shapes.add_polygons([square])
    new_id = int(shapes.features["id"].iloc[-1])
    assert new_id == 17  # a fresh id
    assert (link.labels_layer.data == new_id).sum() >= 15 * 15
    assert new_id in _ids(link.points_layer)
    assert edits


def test_deleting_a_polygon_or_a_centre_deletes_the_object(linked):
    link, _ = linked
    shapes, points, labels = link.shapes_layer, link.points_layer, link.labels_layer
    row = list(shapes.features["id"]).index(5)
    shapes.selected_data = {row}
    shapes.remove_selected()
    assert not (labels.data == 5).any() and 5 not in _ids(points)
    row = list(points.features["id"]).index(7)
    points.selected_data = {row}
    points.remove_selected()
    assert not (labels.data == 7).any() and 7 not in _ids(shapes)
    assert set(np.unique(labels.data)) - {0} == _ids(shapes) == _ids(points)


def test_moving_a_polygon_moves_the_object(linked):
    link, _ = linked
    shapes, labels = link.shapes_layer, link.labels_layer
    row = list(shapes.features["id"]).index(1)
    data = [np.asarray(d) for d in shapes.data]
    data[row] = data[row] + [0.0, 3.0]  # three pixels to the right
    before = np.argwhere(labels.data == 1).mean(0)
    shapes.data = data  # napari reports every shape as changed
    after = np.argwhere(labels.data == 1).mean(0)
    np.testing.assert_allclose(after - before, [0.0, 3.0], atol=0.6)
    centre = np.asarray(link.points_layer.data)[list(link.points_layer.features["id"]).index(1)]
    np.testing.assert_allclose(centre, after)


def test_setting_a_class_is_an_edit_and_editing_marks_the_object(linked):
    link, edits = linked
    link.shapes_layer.features = link.shapes_layer.features.assign(
        **{"class": ["tumour"] + ["object"] * 15}
    )
    assert edits == [1]
    link.labels_layer.brush_size = 3
    link.labels_layer.paint((14, 8), 1)  # grow object 1 by a few pixels
    assert link.object_status() == {"untouched": 15, "edited": 1, "added": 0}


def test_undo_and_redo_of_a_paint_follow_in_outlines_and_centres(linked):
    link, edits = linked
    layer = link.labels_layer
    layer.brush_size = 7
    layer.paint((17, 17), 99)
    link.flush()
    assert 99 in _ids(link.shapes_layer)
    layer.undo()  # Ctrl+Z
    assert not (layer.data == 99).any()
    assert 99 not in _ids(link.shapes_layer) and 99 not in _ids(link.points_layer)
    assert 99 not in link.index.boxes
    layer.redo()
    assert 99 in _ids(link.shapes_layer) and 99 in _ids(link.points_layer)
    assert len(edits) == 3


def test_a_stroke_updates_the_shapes_layer_once_after_its_last_dab(linked, qtbot):
    link, edits = linked
    shapes, points = link.shapes_layer, link.points_layer
    changes = []
    shapes.events.data.connect(lambda e: changes.append(str(getattr(e, "action", ""))))
    before = [np.asarray(d).copy() for d in shapes.data]
    link.labels_layer.brush_size = 3
    for col in range(14, 19):  # five dabs growing object 1 to the right
        link.labels_layer.paint((9, col), 1)
    assert (link.labels_layer.data[8:11, 14:19] == 1).all() and len(edits) == 5
    row = list(shapes.features["id"]).index(1)
    np.testing.assert_array_equal(shapes.data[row], before[row])  # not yet shown
    assert link.pending == {1}
    qtbot.waitUntil(lambda: not link.pending, timeout=2000)
    assert np.asarray(shapes.data[row])[:, 1].max() >= 18  # the grown outline
    assert len(changes) <= 1  # one layer update for the whole stroke, not one per dab
    centre = np.asarray(points.data)[list(points.features["id"]).index(1)]
    np.testing.assert_allclose(centre, np.argwhere(link.labels_layer.data == 1).mean(0))


def test_a_polygon_edit_during_the_deferral_is_not_overwritten(linked, qtbot):
    link, _ = linked
    shapes, labels = link.shapes_layer, link.labels_layer
    labels.brush_size = 3
    labels.paint((9, 15), 1)  # grow object 1; its outline is pending
    row = list(shapes.features["id"]).index(1)
    square = np.array([[2.0, 2.0], [2.0, 16.0], [16.0, 16.0], [16.0, 2.0]])
    data = [np.asarray(d) for d in shapes.data]
    data[row] = square
    shapes.data = data  # the user reshapes object 1 before the timer fired
    assert 1 not in link.pending
    link.flush()
    np.testing.assert_allclose(np.asarray(shapes.data[row]), square)
    assert (labels.data[3:15, 3:15] == 1).all()


def test_painting_with_defer_0_updates_the_layers_within_the_event(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = set_layers(viewer, labels_to_layer_tuples(_grid(), {}, "img"))
    link = LiveLink(*layers, defer_ms=0)
    link.labels_layer.brush_size = 7
    link.labels_layer.paint((17, 17), 99)
    assert 99 in _ids(link.shapes_layer) and 99 in _ids(link.points_layer)
    assert not link.pending
    with pytest.raises(ValueError, match="defer_ms"):
        LiveLink(*layers, defer_ms=-1)
