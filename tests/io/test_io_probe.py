"""Header checks before decoding: declared size against memory, format behind the extension."""

from __future__ import annotations

import shutil
import zlib

import numpy as np
import pytest
import tifffile

from napari_cellist.images import display_range
from napari_cellist.io import probe
from napari_cellist.io.probe import ImageTooLargeError, check_decodable, probe_image
from napari_cellist.io.readers import ImageReadError, read_image


def _huge_tiff(path, side=40_000):
    tile = zlib.compress(np.zeros((1024, 1024), np.uint8).tobytes())
    n = -(-side // 1024)
    tifffile.imwrite(
        path,
        (tile for _ in range(n * n)),
        shape=(side, side),
        dtype=np.uint8,
        tile=(1024, 1024),
        compression="zlib",
    )
    return path


def test_probe_reads_the_declared_size_without_decoding(tmp_path):
    path = _huge_tiff(tmp_path / "huge.tif")
    assert path.stat().st_size < 2_000_000  # 1.7 MB on disk, 1.6 GB declared
    header = probe_image(path)
    assert header.shape == (40_000, 40_000) and header.dtype == np.uint8
    assert header.nbytes == 1_600_000_000 and not header.memmappable
    assert header.describe() == "40000 x 40000 uint8 (1.6 GB)"


def test_an_image_larger_than_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    path = _huge_tiff(tmp_path / "huge.tif")
    monkeypatch.setattr(probe, "available_memory", lambda: 1 * 2**30)
    with pytest.raises(
        ImageTooLargeError, match=r"huge\.tif' declares 40000 x 40000 uint8"
    ) as info:
        read_image(path)
    assert "\n" not in str(info.value) and "crop it" in str(info.value)


def test_memory_mapped_tiffs_are_not_refused(tmp_path, monkeypatch):
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.zeros((512, 512), np.uint16))
    monkeypatch.setattr(probe, "available_memory", lambda: 1000)
    check_decodable(probe_image(path))  # uncompressed: memory-mapped, not loaded


def test_probe_names_the_real_format(tmp_path):
    import imageio.v3 as iio

    png = tmp_path / "real.png"
    iio.imwrite(png, np.zeros((8, 8), np.uint8))
    fake = tmp_path / "fake.tif"
    shutil.copy(png, fake)
    assert probe_image(png).shape == (8, 8)
    with pytest.raises(ImageReadError, match=r"fake\.tif'.*not a TIFF"):
        probe_image(fake)


def test_probe_finds_truncated_png(tmp_path):
    import imageio.v3 as iio

    path = tmp_path / "cut.png"
    iio.imwrite(path, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        probe_image(path)


def test_missing_paths_and_loops_are_named_as_such(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        probe_image(tmp_path / "nowhere")  # not "unsupported file type ''"
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(ImageReadError, match="loops back on itself"):
        probe_image(tmp_path / "loop")


def test_display_range_uses_percentiles():
    image = np.full((100, 100), 100, np.uint16)
    image[40:60, 40:60] = 900
    image[0, 0] = 65535  # one hot pixel must not decide the contrast
    lo, hi = display_range(image)
    assert lo == 100 and 899 <= hi <= 901
    assert display_range(np.zeros((4, 4))) == (0.0, 1.0)
    assert display_range(np.full((4, 4), np.nan)) == (0.0, 1.0)
