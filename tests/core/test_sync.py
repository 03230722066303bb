import numpy as np

from napari_cellist.geometry import polygons_from_labels
from napari_cellist.sync import apply_polygon_edits, polygon_edits


def reconcile(labels, current, synced, tolerance):
    """What a Sync does: polygon edits into the labels, then outlines from the labels."""
    merged, _ = apply_polygon_edits(labels, current, synced)
    return merged, polygons_from_labels(merged, tolerance)


def _labels():
    labels = np.zeros((40, 40), np.int32)
    labels[2:10, 2:10] = 1
    labels[20:30, 20:30] = 2
    labels[2:8, 25:35] = 3
    return labels


def test_no_edits_keeps_everything():
    labels = _labels()
    synced = polygons_from_labels(labels, 0.5)
    merged, polygons = reconcile(labels, list(synced.items()), synced, 0.5)
    assert np.array_equal(merged, labels)
    assert set(polygons) == {1, 2, 3}


def test_polygon_delete_move_and_add_reach_the_labels():
    labels = _labels()
    synced = polygons_from_labels(labels, 0.5)
    current = [(1, synced[1] + [0, 10])]  # moved right by 10 px; 2 and 3 deleted
    current.append((0, np.array([[32.0, 2.0], [32.0, 12.0], [38.0, 12.0], [38.0, 2.0]])))  # drawn
    edits = polygon_edits(current, synced)
    assert edits.deleted == (2, 3) and edits.modified == (1,) and edits.added == 1
    merged, polygons = reconcile(labels, current, synced, 0.5)
    assert set(np.unique(merged)) == {0, 1, 4}
    assert merged[5, 15] == 1 and merged[5, 3] == 0  # moved
    assert merged[35, 6] == 4  # new object with a fresh id
    assert set(polygons) == {1, 4}


def test_painting_reaches_the_polygons():
    labels = _labels()
    synced = polygons_from_labels(labels, 0.5)
    painted = labels.copy()
    painted[2:10, 10:16] = 1  # the user painted object 1 wider
    painted[painted == 3] = 0  # and erased object 3
    merged, polygons = reconcile(painted, list(synced.items()), synced, 0.5)
    assert np.array_equal(merged, painted)
    assert set(polygons) == {1, 2}
    assert polygons[1][:, 1].max() > 14


def test_repeated_ids_become_new_objects():
    labels = _labels()
    synced = polygons_from_labels(labels, 0.5)
    copy = synced[2] + [-15, -15]
    current = [*synced.items(), (2, copy)]  # a duplicated polygon keeps the copied id
    merged, _ = reconcile(labels, current, synced, 0.5)
    assert len(np.unique(merged)) == 5  # 0 + three objects + the copy
