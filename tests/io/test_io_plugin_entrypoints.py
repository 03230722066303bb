"""Tests of the thin npe2 entry points _reader, _writer and _sample_data, without a viewer."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile

from napari_cellist._reader import napari_get_reader, read_layers
from napari_cellist._sample_data import (
    make_nuclei_sample,
    make_nuclei_sample_with_truth,
    sample_image_path,
    sample_mask_path,
)
from napari_cellist._writer import write_labels
from napari_cellist.io.readers import ImageReadError, read_image
from napari_cellist.io.writers import read_labels_tiff


def test_get_reader_returns_none_for_unsupported(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path / "missing.tif")) is None
    assert napari_get_reader(str(tmp_path / "empty")) is None
    assert napari_get_reader([str(sample_image_path()), str(tmp_path / "notes.txt")]) is None
    assert napari_get_reader([]) is None
    assert napari_get_reader(12345) is None  # never raises


def test_reader_single_file():
    reader = napari_get_reader(str(sample_image_path()))
    [(data, kwargs, layer_type)] = reader(str(sample_image_path()))
    assert layer_type == "image" and data.shape == (512, 512)
    assert kwargs["name"] == "nuclei_dsb2018" and kwargs["scale"] == (1.0, 1.0)
    assert kwargs["rgb"] is False and kwargs["channel_axis"] is None
    assert kwargs["metadata"]["cellist_path"] == str(sample_image_path())


def test_reader_channels_and_list(tmp_path):
    path = tmp_path / "two.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 8, 9), np.uint8),
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"axes": "CYX", "unit": "um"},
    )
    paths = [str(path), str(sample_image_path())]
    layers = napari_get_reader(paths)(paths)
    assert [k["name"] for _, k, _ in layers] == ["two", "nuclei_dsb2018"]
    assert layers[0][1]["channel_axis"] == 0 and layers[0][1]["scale"] == (0.5, 0.5)


def test_reader_annotated_folder(tmp_path):
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "points").mkdir()
    shutil.copy(sample_image_path(), root / "images" / "a.tif")
    shutil.copy(sample_mask_path(), root / "masks" / "a.tif")
    (root / "points" / "a.csv").write_text("y,x\n3,4\n")
    layers = napari_get_reader(str(root))(str(root))
    assert [(k["name"], t) for _, k, t in layers] == [
        ("a", "image"),
        ("a masks", "labels"),
        ("a points", "points"),
    ]
    assert layers[1][0].dtype == np.int32 and layers[1][0].max() == 125
    assert layers[1][1]["metadata"]["cellist_path"] == str(root / "masks" / "a.tif")


def test_reader_error_is_the_clear_one(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00garbage")
    assert napari_get_reader(str(path)) is None  # napari may offer it to another plugin
    with pytest.raises(ImageReadError, match="broken.tif"):
        read_layers(str(path))  # called directly, the reader still says what is wrong


def test_writer_round_trip_with_scale(tmp_path):
    labels = np.zeros((2, 10, 12), np.int32)
    labels[1, 2:5, 3:7] = 3
    [written] = write_labels(str(tmp_path / "l.tif"), labels, {"scale": (3.0, 0.5, 0.5)})
    np.testing.assert_array_equal(read_labels_tiff(written), labels)
    assert read_image(written).scale == (3.0, 0.5, 0.5)
    [plain] = write_labels(str(tmp_path / "p.tif"), labels[0], {"scale": (1.0, 1.0)})
    assert read_image(plain).unit == "pixel"


def test_samples():
    [(image, kwargs, layer_type)] = make_nuclei_sample()
    assert layer_type == "image" and kwargs["name"] == "nuclei" and image.shape == (512, 512)
    assert kwargs["metadata"]["cellist_path"] == str(sample_image_path())
    layers = make_nuclei_sample_with_truth()
    assert [(k["name"], t) for _, k, t in layers] == [
        ("nuclei", "image"),
        ("nuclei ground truth", "labels"),
    ]
    truth = layers[1][0]
    assert truth.dtype == np.int32 and len(np.unique(truth)) == 126
    assert (sample_image_path().parent / "SOURCE.md").is_file()


def test_folder_opens_first_image_visible_with_percentile_contrast(tmp_path):
    """Issue 15: a folder of 3 uint16 images is not 6 stacked visible layers, nor near black."""
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        image = np.full((32, 32), 200 + i, np.uint16)
        image[8:24, 8:24] = 1200
        image[0, 0] = 65535  # a hot pixel
        tifffile.imwrite(root / "images" / f"im{i}.tif", image)
        tifffile.imwrite(root / "masks" / f"im{i}.tif", (image == 1200).astype(np.uint16))
    layers = napari_get_reader(str(root))(str(root))
    assert [(k["name"], k["visible"]) for _, k, _ in layers] == [
        ("im0", True),
        ("im0 masks", True),
        ("im1", False),
        ("im1 masks", False),
        ("im2", False),
        ("im2 masks", False),
    ]
    lo, hi = layers[0][1]["contrast_limits"]
    assert lo == 200 and 1199 <= hi <= 1200  # not (0, 65535)


def test_unmatched_masks_are_named_in_a_warning(tmp_path):
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    shutil.copy(sample_image_path(), root / "images" / "a.tif")
    shutil.copy(sample_mask_path(), root / "masks" / "a_mask.tif")
    shutil.copy(sample_mask_path(), root / "masks" / "b.tif")
    with pytest.warns(UserWarning, match=r"2 mask file\(s\).*a_mask\.tif, b\.tif"):
        layers = napari_get_reader(str(root))(str(root))
    assert [t for _, _, t in layers] == ["image"]


def test_folder_with_an_unreadable_mask_is_declined(tmp_path):
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    shutil.copy(sample_image_path(), root / "images" / "a.tif")
    (root / "masks" / "a.tif").write_text("not a mask")
    assert napari_get_reader(str(root)) is None
    (root / "masks" / "a.tif").unlink()
    tifffile.imwrite(root / "masks" / "a.tif", np.zeros((7, 7), np.uint16))  # wrong shape
    assert napari_get_reader(str(root)) is None
    (root / "masks" / "a.tif").unlink()
    assert napari_get_reader(str(root)) is not None
