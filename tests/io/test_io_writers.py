"""Tests of napari_cellist.io.writers: atomic writes and label-map TIFFs."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from napari_cellist.io.readers import read_image
from napari_cellist.io.writers import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_text,
    read_labels_tiff,
    write_labels_tiff,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_text(path, "one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(path.parent) == ["a.json"]
    assert path.stat().st_mode & 0o777 != 0o600  # not mkstemp's private mode


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path, "w", encoding="utf-8") as file:
        file.write("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(path, "a"):
            pass


@pytest.mark.parametrize(("max_id", "dtype"), [(65535, np.uint16), (65536, np.int32)])
def test_labels_tiff_round_trip(tmp_path, max_id, dtype):
    labels = np.zeros((3, 20, 30), np.int64)
    labels[1, 2:5, 3:9] = max_id
    labels[2, 10:, :4] = 7
    path = write_labels_tiff(tmp_path / "l.tif", labels, scale=(2.0, 0.5, 0.25))
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].dtype == dtype and tif.pages[0].compression == 8  # ADOBE_DEFLATE
    back = read_labels_tiff(path)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, labels)
    image = read_image(path)
    assert image.scale == (2.0, 0.5, 0.25) and image.unit == "µm"


def test_labels_tiff_2d_without_scale(tmp_path):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = write_labels_tiff(tmp_path / "l.tif", labels)
    np.testing.assert_array_equal(read_labels_tiff(path), labels)
    assert read_image(path).unit == "pixel"


def test_write_labels_tiff_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=">= 0"):
        write_labels_tiff(tmp_path / "l.tif", np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="scale"):
        write_labels_tiff(tmp_path / "l.tif", np.zeros((4, 4), int), scale=(1.0,))
    assert not list(tmp_path.iterdir())


def test_read_labels_tiff_rejects_non_labels(tmp_path):
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4))
    with pytest.raises(ValueError, match="not a label map"):
        read_labels_tiff(path)
    tifffile.imwrite(path, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="colour"):
        read_labels_tiff(path)
    with pytest.raises(ValueError, match="TIFF"):
        read_labels_tiff(tmp_path / "x.png")
