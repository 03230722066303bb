"""Tests of napari_cellist.io.overlays.save_overlay_png."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from napari_cellist._sample_data import sample_image_path, sample_mask_path
from napari_cellist.geometry import centres
from napari_cellist.io.overlays import POINT_COLOUR, save_overlay_png
from napari_cellist.io.readers import read_image
from napari_cellist.io.writers import read_labels_tiff


def test_overlay_2d(tmp_path):
    image = read_image(sample_image_path()).data
    labels = read_labels_tiff(sample_mask_path())
    _, points = centres(labels)
    path = save_overlay_png(tmp_path / "o.png", image, labels, points)
    picture = iio.imread(path)
    assert picture.shape == (512, 512, 3) and picture.dtype == np.uint8
    coloured = np.ptp(picture.astype(int), axis=-1) > 0
    outline_fraction = coloured[labels > 0].mean()
    assert 0.05 < outline_fraction < 0.6  # outlines, not filled objects
    assert not coloured[(labels == 0)[:, :]][50:].all()
    row, col = np.round(points[10]).astype(int)
    assert tuple(picture[row, col]) == POINT_COLOUR
    assert (picture[:12, :40] == 255).any()  # the count label


def test_overlay_3d_rgb_and_shape_mismatch(tmp_path):
    image = np.random.default_rng(0).random((4, 32, 32))
    labels = np.zeros((4, 32, 32), np.int32)
    labels[1:3, 8:20, 8:20] = 5
    picture = iio.imread(save_overlay_png(tmp_path / "o.png", image, labels, show_count=False))
    assert picture.shape == (32, 32, 3) and np.ptp(picture[8, 8:20].astype(int), axis=-1).all()
    rgb = np.zeros((32, 32, 3), np.uint8)
    save_overlay_png(tmp_path / "rgb.png", rgb, labels[1])
    with pytest.raises(ValueError, match="differ in shape"):
        save_overlay_png(tmp_path / "bad.png", image[0, :10], labels[1])
