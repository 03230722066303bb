"""Object diameters from label maps and from images (one place for every model)."""

import numpy as np
import pytest

from napari_cellist.diameters import diameter_from_image, diameter_from_labels


def test_diameter_of_discs_and_balls():
    disc = np.zeros((40, 40), np.int32)
    disc[10:20, 10:20] = 1  # 100 px
    assert diameter_from_labels([disc]) == pytest.approx(2 * np.sqrt(100 / np.pi))
    ball = np.zeros((12, 12, 12), np.int32)
    ball[2:8, 2:8, 2:8] = 3  # 216 voxels
    assert diameter_from_labels([ball]) == pytest.approx((6 * 216 / np.pi) ** (1 / 3))


def test_object_areas_are_pooled_over_maps_and_missing_maps_ignored():
    a = np.zeros((30, 30), np.int32)
    a[:2, :2], a[5:10, 5:10] = 1, 2  # 4 and 25 px
    b = np.zeros((30, 30), np.int32)
    b[:6, :6] = 7  # 36 px
    assert diameter_from_labels([a, None, b]) == pytest.approx(2 * np.sqrt(25 / np.pi))
    assert diameter_from_labels([np.zeros((5, 5), np.int32), None]) is None
    assert diameter_from_labels([]) is None


def test_diameter_from_the_real_sample_is_close_to_the_annotated_one(dsb):
    image, mask = dsb
    truth = diameter_from_labels([mask])
    assert 23 < truth < 24.5  # median area 440 px
    assert 0.7 * truth < diameter_from_image(image.astype(np.float32)) < 1.35 * truth
    assert diameter_from_image(np.full((32, 32), 3.0)) == 4.0
