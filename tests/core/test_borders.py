"""Mirroring the image border so that objects cut by it are segmented, then cropping back."""

from __future__ import annotations

import numpy as np

from napari_cellist.borders import (
    crop_border,
    crop_labels,
    mirror_border,
    mirror_labels,
    mirror_width,
)


def test_mirror_width_is_a_fraction_of_the_diameter_within_the_image():
    assert mirror_width(24.0, 0.5, (100, 100)) == 12
    assert mirror_width(24.0, 0.0, (100, 100)) == 0
    assert mirror_width(float("nan"), 0.5, (100, 100)) == 0
    assert mirror_width(400.0, 0.5, (30, 50)) == 29  # reflection needs width < side


def test_mirror_then_crop_is_the_identity_and_leaves_other_axes_alone():
    stack = np.random.default_rng(0).random((3, 10, 12, 2))  # (Z, Y, X, C)
    padded = mirror_border(stack, 4, yx_axes=(-3, -2))
    assert padded.shape == (3, 18, 20, 2)
    np.testing.assert_array_equal(padded[:, 3, 4:-4], stack[:, 1])  # reflected about row 0
    np.testing.assert_array_equal(crop_border(padded, 4, yx_axes=(-3, -2)), stack)


def test_a_half_object_at_the_border_becomes_whole_and_crops_back_to_its_visible_part():
    labels = np.zeros((20, 20), np.int32)
    labels[0:3, 8:12] = 7  # a nucleus cut by the top border
    mirrored = mirror_border(labels, 5)
    assert np.unique(mirrored[mirrored > 0]).tolist() == [7]
    assert (mirrored == 7).sum() == 4 * 5  # rows -2..2 around the border, one object
    segmented = mirrored.copy()
    segmented[0:2, 0:2] = 3  # something found only inside the mirrored margin
    out, old_ids = crop_labels(segmented, 5)
    assert old_ids.tolist() == [7]
    assert out.dtype == np.int32 and out.shape == labels.shape
    assert out.max() == 1 and np.array_equal(out > 0, labels > 0)


def test_mirrored_annotations_give_mirror_images_their_own_ids():
    """A cut object joins its mirror image into one; the mirror image of an object near the border
    but not cut by it is a separate object (same pixels as mirror_border, a new id)."""
    labels = np.zeros((20, 20), np.int32)
    labels[0:3, 8:12] = 1  # cut by the top border
    labels[2:5, 14:17] = 2  # near the top border, not touching it
    labels[10:14, 8:12] = 3  # inside, further than the margin
    mirrored = mirror_labels(labels, 5)
    same_pixels = mirror_border(labels, 5)
    np.testing.assert_array_equal(mirrored > 0, same_pixels > 0)
    np.testing.assert_array_equal(crop_border(mirrored, 5), labels)  # the image's own ids stay
    assert np.all(mirrored[1:4, 19:22] == 4)  # object 2's copy above the border: a new id
    assert np.count_nonzero(mirrored == 1) == np.count_nonzero(same_pixels == 1)  # whole again
    assert np.count_nonzero(mirrored == 2) == np.count_nonzero(labels == 2)
    assert np.count_nonzero(mirrored == 3) == np.count_nonzero(labels == 3)
    assert len(np.unique(mirrored)) == 7  # 0, 3 objects, object 2's copies (top, right, corner)
    np.testing.assert_array_equal(mirror_labels(labels, 0), labels)
