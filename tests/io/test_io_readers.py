"""Tests of napari_cellist.io.readers: images, pixel sizes, errors, annotated folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellist._sample_data import sample_image_path, sample_mask_path
from napari_cellist.io.readers import (
    ImageReadError,
    as_label_map,
    is_annotated_folder,
    list_images,
    read_annotated_folder,
    read_image,
    read_mask,
)


def test_reads_sample_tiff():
    image = read_image(sample_image_path())
    assert image.data.shape == (512, 512) and image.data.dtype == np.uint16
    assert (image.axes, image.name, image.rgb, image.channel_axis) == (
        "YX",
        "nuclei_dsb2018",
        False,
        None,
    )
    assert image.scale == (1.0, 1.0) and image.unit == "pixel"


def test_ome_tiff_pixel_size(tmp_path):
    path = tmp_path / "stack.ome.tif"
    data = np.zeros((3, 1, 16, 20), np.uint16)
    meta = {"axes": "ZCYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 1.5}
    tifffile.imwrite(path, data, ome=True, metadata=meta)
    image = read_image(path)
    assert image.name == "stack" and image.axes == "ZYX" and image.data.shape == (3, 16, 20)
    assert image.scale == (1.5, 0.3, 0.3) and image.unit == "µm"


def test_imagej_pixel_size_and_channels(tmp_path):
    path = tmp_path / "ij.tif"
    data = np.zeros((4, 2, 16, 20), np.uint16)
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.65, 1 / 0.65),
        metadata={"axes": "ZCYX", "spacing": 2.0, "unit": "micron"},
    )
    image = read_image(path)
    assert image.axes == "ZCYX" and image.channel_axis == 1
    assert image.scale == (2.0, 0.65, 0.65) and image.unit == "µm"
    assert image.layer_scale() == (2.0, 0.65, 0.65)
    assert image.spatial_shape == (4, 16, 20)


def test_resolution_tags_in_centimetres(tmp_path):
    path = tmp_path / "res.tif"
    tifffile.imwrite(
        path,
        np.zeros((8, 8), np.uint8),
        resolution=(1e4 / 0.5, 1e4 / 0.25),
        resolutionunit="CENTIMETER",
    )
    assert read_image(path).scale == (0.25, 0.5)


def test_rgb_png_and_grey_jpeg(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "c.png", np.zeros((10, 12, 3), np.uint8))
    iio.imwrite(tmp_path / "g.jpg", np.full((10, 12), 128, np.uint8))
    colour, grey = read_image(tmp_path / "c.png"), read_image(tmp_path / "g.jpg")
    assert colour.rgb and colour.axes == "YXS" and colour.layer_scale() == (1.0, 1.0)
    assert not grey.rgb and grey.axes == "YX" and grey.data.shape == (10, 12)


def test_singleton_axes_squeezed(tmp_path):
    path = tmp_path / "s.tif"
    tifffile.imwrite(
        path, np.ones((1, 1, 9, 7), np.float32), imagej=True, metadata={"axes": "TZYX"}
    )
    image = read_image(path)
    assert image.data.shape == (9, 7) and image.axes == "YX"


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.tif", b"", "empty"),
        ("notes.tif", b"this is not an image at all\n" * 10, "corrupt"),
        ("image.bmp", b"BM....", "unsupported file type"),
        ("fake.png", b"\x89PNG garbage", "corrupt"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=match) as info:
        read_image(path)
    assert name in str(info.value)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_truncated_tiff(tmp_path, compression):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(
        path, np.arange(256 * 256, dtype=np.uint16).reshape(256, 256), compression=compression
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.tif"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "nope.tif")


def test_large_uncompressed_tiff_is_memory_mapped(tmp_path, monkeypatch):
    from napari_cellist.io import _formats

    monkeypatch.setattr(_formats, "MEMMAP_BYTES", 1000)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.arange(2 * 40 * 50, dtype=np.uint16).reshape(2, 40, 50))
    image = read_image(path)
    assert isinstance(image.data, np.memmap) and not image.data.flags.writeable
    assert image.data[1, 0, 0] == 2000


def _annotated(tmp_path: Path, with_points: bool = True) -> Path:
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    shutil.copy(sample_image_path(), root / "images" / "a.tif")
    shutil.copy(sample_image_path(), root / "images" / "b.tif")
    shutil.copy(sample_mask_path(), root / "masks" / "a.tif")
    (root / "images" / ".hidden.tif").write_bytes(b"")
    if with_points:
        (root / "points").mkdir()
        (root / "points" / "a.csv").write_text("x,y,label\n1.5,2,n1\n10,20,n2\n")
    return root


def test_annotated_folder(tmp_path):
    root = _annotated(tmp_path)
    assert is_annotated_folder(root) and not is_annotated_folder(root / "images")
    pairs = read_annotated_folder(root)
    assert [p.image.name for p in pairs] == ["a", "b"]
    assert pairs[0].mask.dtype == np.int32 and len(np.unique(pairs[0].mask)) == 126
    assert pairs[1].mask is None and pairs[1].points is None
    np.testing.assert_array_equal(pairs[0].points, [[2.0, 1.5], [20.0, 10.0]])


def test_annotated_folder_mask_shape_mismatch(tmp_path):
    root = _annotated(tmp_path, with_points=False)
    tifffile.imwrite(root / "masks" / "b.tif", np.zeros((5, 5), np.uint16))
    with pytest.raises(ImageReadError, match="shape"):
        read_annotated_folder(root)


def test_list_images(tmp_path):
    root = _annotated(tmp_path)
    (tmp_path / "z.png").write_bytes(b"x")
    (tmp_path / "readme.txt").write_text("hi")
    found = list_images([root, tmp_path / "z.png", root / "images" / "a.tif"])
    assert [p.name for p in found] == ["a.tif", "b.tif", "z.png"]
    assert [p.name for p in list_images(tmp_path)] == ["z.png"]
    with pytest.raises(ImageReadError, match="unsupported"):
        list_images([tmp_path / "readme.txt"])


def test_read_mask_validation(tmp_path):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, np.full((4, 4), 0.5, np.float32))
    with pytest.raises(ValueError, match="whole numbers"):
        read_mask(path)
    tifffile.imwrite(path, np.full((4, 4), -1, np.int16))
    with pytest.raises(ValueError, match=">= 0"):
        read_mask(path)


def test_as_label_map():
    assert as_label_map(np.array([[0, 2.0]])).dtype == np.int32
    assert as_label_map(np.array([[True, False]])).tolist() == [[1, 0]]
    with pytest.raises(ValueError, match="int32"):
        as_label_map(np.array([2**40], np.int64))
    with pytest.raises(ValueError, match="dtype"):
        as_label_map(np.array(["a"]))
