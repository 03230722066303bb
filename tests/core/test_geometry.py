import numpy as np
import pytest

from napari_cellist.geometry import (
    bounding_boxes,
    centres,
    decode_mask,
    encode_mask,
    labels_from_polygons,
    mask_to_polygon,
    polygons_from_labels,
    rasterize_polygon,
)
from napari_cellist.metrics import iou_matrix


def test_polygons_round_trip_real_mask(dsb):
    _, mask = dsb
    polygons = polygons_from_labels(mask, tolerance=0.0)
    assert len(polygons) == 125
    redrawn = labels_from_polygons(polygons, mask.shape)
    iou, _, _ = iou_matrix(mask, redrawn)
    best = iou.max(axis=1)
    assert np.median(best) > 0.95
    assert best.min() > 0.6  # one-pixel-wide parts of tiny objects may be lost


def test_simplification_reduces_vertices_and_keeps_shape(dsb):
    _, mask = dsb
    fine = polygons_from_labels(mask, tolerance=0.0)
    coarse = polygons_from_labels(mask, tolerance=1.5)
    assert sum(map(len, coarse.values())) < 0.5 * sum(map(len, fine.values()))
    iou, _, _ = iou_matrix(mask, labels_from_polygons(coarse, mask.shape))
    assert np.median(iou.max(axis=1)) > 0.9


def test_mask_to_polygon_empty_and_square():
    assert mask_to_polygon(np.zeros((5, 5), bool)).shape == (0, 2)
    square = np.zeros((10, 10), bool)
    square[2:6, 3:8] = True
    poly = mask_to_polygon(square, tolerance=0.5)
    assert np.array_equal(rasterize_polygon(poly, square.shape), square)


@pytest.mark.parametrize("shape", [(7, 9), (3, 6, 5)])
def test_rle_round_trip_2d_and_3d(shape):
    rng = np.random.default_rng(0)
    mask = rng.random(shape) > 0.5
    rle = encode_mask(mask)
    assert isinstance(rle["counts"], str)
    assert np.array_equal(decode_mask(rle), mask)


def test_boxes_and_centres():
    labels = np.zeros((10, 10), np.int32)
    labels[1:3, 2:5] = 4
    labels[6:9, 6:9] = 7
    assert bounding_boxes(labels) == {4: (1, 2, 3, 5), 7: (6, 6, 9, 9)}
    ids, points = centres(labels)
    assert ids.tolist() == [4, 7]
    np.testing.assert_allclose(points, [[1.5, 3.0], [7.0, 7.0]])
    ids, points = centres(np.zeros((4, 4), np.int32))
    assert len(ids) == 0 and points.shape == (0, 2)
