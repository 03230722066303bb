"""Incremental live sync: each edit's result equals a full recomputation, touching few objects."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cellist import live_sync
from napari_cellist.geometry import rasterize_polygon
from napari_cellist.live_sync import (
    LabelIndex,
    after_paint,
    after_pixels_changed,
    delete_objects,
    full_sync,
    set_polygon,
)


def grid(n: int = 6, size: int = 10, gap: int = 4) -> np.ndarray:
    """n x n square objects of ``size`` pixels, ids 1..n*n row by row."""
    step = size + gap
    labels = np.zeros((n * step + gap, n * step + gap), np.int32)
    for k in range(n * n):
        r, c = divmod(k, n)
        labels[gap + r * step : gap + r * step + size, gap + c * step : gap + c * step + size] = (
            k + 1
        )
    return labels


def assert_matches_full(labels, index, update, ids):
    """The update's outlines/centres of ``ids`` equal a full sync's, and the index is exact."""
    full = full_sync(labels)
    for label_id in ids:
        if label_id in full.centres:
            np.testing.assert_allclose(update.centres[label_id], full.centres[label_id])
            assert (label_id in update.polygons) == (label_id in full.polygons)  # tiny: none
            if label_id in full.polygons:
                np.testing.assert_allclose(update.polygons[label_id], full.polygons[label_id])
        else:
            assert label_id in update.deleted
    assert index.boxes == LabelIndex(labels).boxes


def test_index_boxes_and_region_query():
    labels = grid(3)
    index = LabelIndex(labels)
    assert len(index) == 9 and index.boxes[1] == (4, 4, 14, 14)
    assert index.ids_in_region((slice(0, 15), slice(0, 15))) == {1}
    assert index.ids_in_region((slice(10, 20), slice(10, 20))) == {1, 2, 4, 5}
    assert index.next_id() == 10 and index.next_id() == 11
    with pytest.raises(ValueError, match="integer 2D or 3D"):
        LabelIndex(np.zeros(5, np.int32))


def test_paint_extends_one_object_and_recomputes_only_it():
    labels = grid()
    index = LabelIndex(labels)
    region = (slice(14, 17), slice(4, 14))  # below object 1, in the gap
    before = labels[region].copy()
    labels[region] = 1
    update = after_paint(labels, index, region, before)
    assert set(update.centres) == {1} and update.deleted == ()
    assert_matches_full(labels, index, update, [1])
    assert update.region == region


def test_paint_over_a_neighbour_and_erase_one_completely():
    labels = grid()
    index = LabelIndex(labels)
    region = (slice(4, 14), slice(10, 28))  # object 1 paints over all of object 2
    before = labels[region].copy()
    labels[region] = 1
    update = after_paint(labels, index, region, before)
    assert set(update.centres) == {1} and update.deleted == (2,)
    assert_matches_full(labels, index, update, [1, 2])

    region = (slice(18, 28), slice(18, 28))  # erase object 8 entirely
    before = labels[region].copy()
    labels[region] = 0
    update = after_paint(labels, index, region, before)
    assert update.deleted == (8,) and update.centres == {}
    assert index.boxes == LabelIndex(labels).boxes


def test_paint_without_before_uses_the_boxes_in_the_region():
    labels = grid()
    index = LabelIndex(labels)
    region = (slice(30, 45), slice(30, 45))
    labels[32:42, 32:42] = 0  # object 15 erased: only its box says it was there
    update = after_paint(labels, index, region)
    assert 15 in update.deleted
    assert_matches_full(labels, index, update, update.centres)


def test_random_strokes_stay_equal_to_a_full_sync():
    rng = np.random.default_rng(3)
    labels = grid(8)
    index = LabelIndex(labels)
    for _ in range(40):
        r, c = rng.integers(0, labels.shape[0] - 8, 2)
        h, w = rng.integers(1, 8, 2)
        region = (slice(r, r + h), slice(c, c + w))
        before = labels[region].copy()
        labels[region] = rng.choice([0, *index.boxes]) if rng.random() < 0.8 else index.next_id()
        update = after_paint(labels, index, region, before)
        assert_matches_full(labels, index, update, set(update.centres) | set(update.deleted))


def test_moving_a_polygon_moves_its_pixels_and_centre():
    labels = grid()
    index = LabelIndex(labels)
    square = np.array([[50.0, 50.0], [50.0, 60.0], [58.0, 60.0], [58.0, 50.0]])
    update = set_polygon(labels, index, 1, square)
    assert not (labels[4:14, 4:14] == 1).any()  # old pixels cleared
    np.testing.assert_array_equal(
        labels == 1, rasterize_polygon(square, labels.shape) & (labels == 1)
    )
    assert (labels[rasterize_polygon(square, labels.shape)] == 1).all()
    np.testing.assert_allclose(update.centres[1], [54.0, 55.0])
    np.testing.assert_array_equal(update.polygons[1], square)  # the user's vertices as given
    assert update.new_id is None and index.boxes == LabelIndex(labels).boxes
    covered = {int(i) for i in np.unique(grid()[rasterize_polygon(square, labels.shape)])} - {0}
    assert covered - {1} <= set(update.centres) | set(update.deleted)  # neighbours recomputed


def test_drawing_a_new_polygon_gets_a_fresh_id_and_covers_others():
    labels = grid(3)
    index = LabelIndex(labels)
    everything = np.array([[0.0, 0.0], [0.0, 45.0], [45.0, 45.0], [45.0, 0.0]])
    update = set_polygon(labels, index, None, everything)
    assert update.new_id == 10 and set(np.unique(labels)) == {10}
    assert update.deleted == tuple(range(1, 10)) and len(index) == 1
    with pytest.raises(ValueError, match="N >= 3"):
        set_polygon(labels, index, 10, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2D label maps only"):
        set_polygon(
            np.zeros((2, 5, 5), np.int32), LabelIndex(np.zeros((2, 5, 5), np.int32)), 1, everything
        )


def test_deleting_a_centre_deletes_its_object():
    labels = grid()
    index = LabelIndex(labels)
    update = delete_objects(labels, index, [5, 7, 999])
    assert update.deleted == (5, 7) and not np.isin(labels, [5, 7]).any()
    assert index.boxes == LabelIndex(labels).boxes
    assert delete_objects(labels, index, [5]).region is None


def test_3d_paint_gives_centres_without_polygons():
    labels = np.zeros((3, 20, 20), np.int32)
    labels[0:2, 2:6, 2:6] = 1
    index = LabelIndex(labels)
    region = (slice(2, 3), slice(2, 6), slice(2, 6))
    before = labels[region].copy()
    labels[region] = 1
    update = after_paint(labels, index, region, before)
    np.testing.assert_allclose(update.centres[1], [1.0, 3.5, 3.5])
    assert update.polygons == {}


def test_before_of_the_wrong_shape_is_refused():
    labels = grid(2)
    with pytest.raises(ValueError, match="labels\\[region\\]"):
        after_paint(labels, LabelIndex(labels), (slice(0, 4), slice(0, 4)), np.zeros((2, 2)))
    assert live_sync.LiveUpdate().region is None


def test_changed_pixels_as_napari_reports_them():
    labels = grid()
    index = LabelIndex(labels)
    rows, cols = np.mgrid[10:20, 10:20]  # corners of objects 1, 2, 7 and 8 painted 2
    indices = (rows.ravel(), cols.ravel())
    old = labels[indices].copy()
    labels[indices] = 2
    update = after_pixels_changed(labels, index, indices, old)
    assert set(update.centres) == {1, 2, 7, 8}
    assert_matches_full(labels, index, update, [1, 2, 7, 8])
    assert (
        after_pixels_changed(labels, index, (np.array([], int),) * 2, np.array([])).region is None
    )
    with pytest.raises(ValueError, match="coordinate arrays"):
        after_pixels_changed(labels, index, (rows.ravel(),), old)
