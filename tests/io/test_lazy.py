"""Lazy opening of OME-Zarr folders and big / pyramidal TIFFs as dask arrays."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_cellist.io.lazy import (
    is_large,
    is_lazy_path,
    is_pyramidal,
    lazy_layer_data,
    open_lazy,
)


def write_ome_zarr(path, data: np.ndarray, axes: str, levels: int = 2, version: str = "0.4"):
    """A small OME-Zarr image: ``levels`` resolutions halving the last two axes."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    datasets = []
    for level in range(levels):
        step = 2**level
        part = data[(..., slice(None, None, step), slice(None, None, step))]
        group.create_array(str(level), data=part, chunks=(1,) * (data.ndim - 2) + (32, 32))
        datasets.append({"path": str(level)})
    meta = {"version": version, "axes": [{"name": a} for a in axes], "datasets": datasets}
    if version == "0.4":
        group.attrs["multiscales"] = [meta]
    else:
        group.attrs["ome"] = {"version": version, "multiscales": [meta]}
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_channels_and_levels(tmp_path, version):
    data = np.arange(2 * 96 * 80, dtype=np.uint16).reshape(2, 96, 80)
    path = write_ome_zarr(tmp_path / "img.zarr", data, "cyx", version=version)
    assert is_lazy_path(path) and is_large(path)
    image = open_lazy(path)
    assert image.axes == "cyx"
    assert [lv.shape for lv in image.levels] == [(2, 96, 80), (2, 48, 40)]
    assert all(isinstance(lv, da.Array) for lv in image.levels)
    grey = image.grey(channel=1)
    assert isinstance(grey, da.Array) and grey.chunksize == (32, 32)
    np.testing.assert_array_equal(grey.compute(), data[1])
    with pytest.raises(ValueError, match="Channel 2"):
        image.grey(channel=2)
    (layer_data, kwargs, kind) = lazy_layer_data(path)[0]
    assert kind == "image" and kwargs["multiscale"] and kwargs["channel_axis"] == 0
    assert len(layer_data) == 2


def test_pyramidal_bigtiff_is_read_lazily(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (512, 384), dtype=np.uint8)
    path = tmp_path / "slide.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(data, tile=(128, 128), subifds=2)
        tif.write(data[::2, ::2], tile=(128, 128), subfiletype=1)
        tif.write(data[::4, ::4], tile=(128, 128), subfiletype=1)
    image = open_lazy(path)
    assert image.axes == "yx"
    assert [lv.shape for lv in image.levels] == [(512, 384), (256, 192), (128, 96)]
    assert image.data.chunksize == (128, 128)  # one TIFF tile per chunk
    np.testing.assert_array_equal(image.grey()[100:300, 50:70].compute(), data[100:300, 50:70])
    assert is_large(path) and is_pyramidal(path)
    layer = lazy_layer_data(path)[0]
    assert layer[1]["multiscale"] and len(layer[0]) == 3


def test_flat_tiff_and_rgb(tmp_path):
    grey = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    tifffile.imwrite(tmp_path / "flat.tif", grey)
    assert not is_large(tmp_path / "flat.tif") and not is_pyramidal(tmp_path / "flat.tif")
    assert is_large(tmp_path / "flat.tif", limit=1000)
    image = open_lazy(tmp_path / "flat.tif")
    assert len(image.levels) == 1 and image.nbytes == grey.nbytes
    np.testing.assert_array_equal(image.grey().compute(), grey)
    rgb = np.stack([grey, grey * 0, grey * 0 + 3], axis=-1).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    image = open_lazy(tmp_path / "rgb.tif")
    assert image.axes == "yxs"
    np.testing.assert_allclose(image.grey().compute(), (grey + 3) / 3.0, rtol=1e-6)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        open_lazy(tmp_path / "missing.zarr")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="neither an OME-Zarr"):
        open_lazy(tmp_path / "notes.txt")
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    with pytest.raises(ValueError, match="no image array"):
        open_lazy(tmp_path / "empty.zarr")


def test_napari_reader_returns_lazy_multiscale_layers(tmp_path):
    from napari_cellist._reader import napari_get_reader

    data = np.arange(96 * 80, dtype=np.uint16).reshape(96, 80)
    path = write_ome_zarr(tmp_path / "scan.zarr", data, "yx")
    reader = napari_get_reader(str(path))
    assert reader is not None
    [(levels, kwargs, kind)] = reader(str(path))
    assert kind == "image" and kwargs["multiscale"] and kwargs["metadata"]["lazy"]
    assert all(isinstance(level, da.Array) for level in levels)
    np.testing.assert_array_equal(levels[1].compute(), data[::2, ::2])
