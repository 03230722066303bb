"""The threshold model's large-image shortcuts keep its answers."""

from __future__ import annotations

import numpy as np

from napari_cellist.diameters import diameter_from_image
from napari_cellist.models.threshold.pipeline import (
    COARSE_DIAMETER_PIXELS,
    estimate_diameter,
    split_touching,
)


def test_coarse_diameter_estimate_on_a_large_real_image(data_dir):
    import tifffile

    gowt1 = tifffile.imread(data_dir / "ctc_gowt1_hela" / "images" / "gowt1_t01.tif")
    image = np.tile(gowt1.astype(np.float32), (3, 3))  # 3072^2 > 2^22 pixels, ~60 px nuclei
    assert image.size > COARSE_DIAMETER_PIXELS
    full = diameter_from_image(image)
    assert abs(estimate_diameter(image) - full) <= 0.03 * full


def test_small_objects_and_small_images_get_the_full_estimate(dsb):
    tiled = np.tile(dsb[0].astype(np.float32), (5, 5))  # ~27 px nuclei: too small to halve
    assert estimate_diameter(tiled) == diameter_from_image(tiled)
    small = dsb[0].astype(np.float32)
    assert estimate_diameter(small) == diameter_from_image(small)


def test_unseeded_components_keep_distinct_ids():
    mask = np.zeros((60, 60), bool)
    mask[5:25, 5:25] = True  # one object with a seed
    for k in range(10):  # one-pixel specks: too small for a seed at this spacing
        mask[40 + 2 * (k % 5), 2 + 5 * k] = True
    labels = split_touching(mask, diameter=20.0, seed_spacing=0.35)
    assert labels.dtype == np.int32 and np.array_equal(labels > 0, mask)
    ids = np.unique(labels[labels > 0])
    assert len(ids) == 11 and ids.tolist() == list(range(1, 12))


def test_scores_and_boxes_from_one_find_objects(dsb):
    from scipy import ndimage as ndi

    from napari_cellist.geometry import bounding_boxes
    from napari_cellist.models.threshold import ThresholdModel
    from napari_cellist.models.threshold.pipeline import object_scores

    image = dsb[0]
    prediction = ThresholdModel().predict(image)
    labels = prediction.labels
    assert prediction.count > 10
    assert {i: m.box for i, m in prediction.objects.items()} == bounding_boxes(labels)
    grey = image.astype(np.float32)
    given = object_scores(grey, labels, ndi.find_objects(labels))
    assert given == object_scores(grey, labels)
    assert given == {i: m.score for i, m in prediction.objects.items()}
    assert all(0.0 <= s <= 1.0 for s in given.values())
