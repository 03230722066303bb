"""Snapping AIR's coarse decoded masks to the image (models/air/refine.py)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.filters import threshold_otsu
from skimage.measure import regionprops

from napari_cellist.metrics import score_image
from napari_cellist.models.air.refine import HISTOGRAM_BINS, _otsu_per_label, snap_to_image


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_a_shifted_undersized_mask_snaps_to_the_object():
    shape = (80, 80)
    truth = _disc(shape, (40, 40), 12)
    rng = np.random.default_rng(0)
    signal = truth * 1.0 + rng.normal(0, 0.1, shape)
    decoded = _disc(shape, (37, 43), 8).astype(np.int32)  # too small, off-centre
    snapped = snap_to_image(decoded, signal, diameter=24.0)
    iou = lambda m: (m & truth).sum() / (m | truth).sum()  # noqa: E731
    assert iou(decoded > 0) < 0.5 and iou(snapped == 1) > 0.85
    assert set(np.unique(snapped)) == {0, 1}


def test_touching_objects_stay_separate_with_their_ids():
    shape = (60, 90)
    left, right = _disc(shape, (30, 30), 14), _disc(shape, (30, 57), 14)
    signal = (left | right) * 1.0
    decoded = np.zeros(shape, np.int32)
    decoded[_disc(shape, (30, 31), 10)] = 7  # ids need not be 1..N in order
    decoded[_disc(shape, (30, 56), 10)] = 3
    snapped = snap_to_image(decoded, signal, diameter=28.0)
    assert set(np.unique(snapped)) == {0, 3, 7}
    assert ((snapped == 7) & right).sum() < 0.1 * right.sum()
    assert ((snapped == 7) & left).sum() > 0.9 * left.sum()
    assert ((snapped == 3) & right).sum() > 0.9 * right.sum()


def test_holes_are_filled_and_detached_blobs_are_not_taken():
    shape = (80, 80)
    nucleus = _disc(shape, (40, 30), 12) & ~_disc(shape, (40, 30), 3)  # a dark nucleolus
    blob = _disc(shape, (40, 49), 3)  # unclaimed bright speck within reach
    signal = (nucleus | blob) * 1.0
    decoded = _disc(shape, (40, 30), 11).astype(np.int32)
    snapped = snap_to_image(decoded, signal, diameter=24.0)
    assert snapped[40, 30] == 1  # the nucleolus is inside the nucleus
    assert not (snapped[blob] == 1).any()


def test_an_object_the_image_does_not_support_keeps_its_decoded_mask():
    shape = (60, 60)
    signal = np.zeros(shape)
    signal[:, 40:] = 1.0  # a bright region next to a dim object
    signal[_disc(shape, (30, 20), 8)] = 0.05
    decoded = _disc(shape, (30, 24), 8).astype(np.int32)
    snapped = snap_to_image(decoded, signal, diameter=16.0, grow=1.5)
    np.testing.assert_array_equal(snapped, decoded)


def test_no_objects_and_shape_mismatch():
    empty = np.zeros((20, 20), np.int32)
    assert not snap_to_image(empty, np.ones((20, 20)), 10.0).any()
    with pytest.raises(ValueError, match="shape"):
        snap_to_image(empty, np.ones((20, 21)), 10.0)


def test_vectorised_otsu_matches_scikit_image_per_region():
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [
            rng.normal(0, 1, 400),
            rng.normal(6, 1, 200),  # region 1
            rng.normal(10, 2, 300),
            rng.normal(30, 2, 300),
        ]
    )  # region 2
    regions = np.repeat([1, 2], [600, 600])
    thresholds = _otsu_per_label(values[None], regions[None], 2)
    for k in (1, 2):
        v = values[regions == k]
        bin_width = np.ptp(v) / HISTOGRAM_BINS
        assert thresholds[k] == pytest.approx(threshold_otsu(v), abs=1.5 * bin_width)
    assert thresholds[0] == np.inf


@pytest.mark.parametrize("size", [0.75, 1.25])
def test_snapping_missized_masks_of_real_nuclei_to_the_image(dsb_crop, size):
    """Blobs at the annotated centres but too small or too large (how AIR's decoded masks go
    wrong) are redrawn close to the annotation on the real DSB image."""
    image, truth = dsb_crop
    yy, xx = np.mgrid[: truth.shape[0], : truth.shape[1]]
    blobs = np.zeros_like(truth)
    for nucleus in regionprops(truth):
        cy, cx = nucleus.centroid
        radius = size * nucleus.equivalent_diameter_area / 2
        blobs[((yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2) & (blobs == 0)] = nucleus.label
    low, high = np.percentile(image, [1.0, 99.8])
    norm = (image - low) / (high - low)
    snapped = snap_to_image(blobs, norm - np.percentile(norm, 10), diameter=24.0)
    before, after = score_image(truth, blobs), score_image(truth, snapped)
    assert after.ap50 > before.ap50 and after.ap50 >= 0.85
    assert after.mean_ap > before.mean_ap + 0.2
