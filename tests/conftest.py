"""Shared fixtures.

Most tests use the DSB2018 nuclei image packaged with the plugin (``napari_cellist/sample_data``,
byte-identical to ``../shared/data/dsb2018_stardist``), so a fresh clone runs them as is.

Tests that need the other real folders (Coelho 2009, Cell Tracking Challenge; see their
SOURCE.md) take the ``data_dir`` or ``read_pair`` fixture, which marks them ``needs_data``: they
FAIL with a message naming the folder when it is missing (they are never skipped silently).
Deselect them with ``-m "not needs_data"``. The folder is ``$CELLIST_DATA``, by default
``../shared/data`` next to the repository.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_cellist._sample_data import sample_image_path, sample_mask_path

# Tests never reach the internet: pretrained weights are not downloaded unless a test (the local
# HTTP server ones in tests/models/test_downloads.py) turns this off for itself.
os.environ.setdefault("CELLIST_OFFLINE", "1")

DATA = Path(os.environ.get("CELLIST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATA_FIXTURES = {"data_dir", "read_pair"}


def pytest_collection_modifyitems(config, items):
    """Tests that take the real-data fixtures carry the ``needs_data`` marker."""
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.needs_data)


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_data") and not DATA.is_dir():
        pytest.fail(
            f"This test needs the real data folder {DATA}, which is missing: set CELLIST_DATA "
            "to the folder holding coelho2009_*/, ctc_gowt1_hela/ and dsb2018_stardist/, or "
            "deselect the data tests with -m 'not needs_data'.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (``$CELLIST_DATA``, default ``../shared/data``)."""
    return DATA


@pytest.fixture(scope="session")
def read_pair(data_dir) -> Callable[[str, str], tuple[np.ndarray, np.ndarray]]:
    """``read_pair(folder, name)`` -> (image, int32 mask) of one annotated image of the data."""

    def read(folder: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        image = tifffile.imread(data_dir / folder / "images" / name)
        mask = tifffile.imread(data_dir / folder / "masks" / name).astype(np.int32)
        return image, mask

    return read


@pytest.fixture(scope="session")
def dsb() -> tuple[np.ndarray, np.ndarray]:
    """The packaged 512x512 DSB2018 nuclei image (uint16 container) and its 125-object mask."""
    return tifffile.imread(sample_image_path()), tifffile.imread(sample_mask_path()).astype(
        np.int32
    )


@pytest.fixture
def dsb_crop(dsb) -> tuple[np.ndarray, np.ndarray]:
    """A 256x256 crop of the DSB image and its mask."""
    image, mask = dsb
    return image[:256, :256].copy(), mask[:256, :256].copy()


@pytest.fixture
def annotated_folder(tmp_path, dsb) -> Path:
    """An images/ + masks/ folder with two real 256x256 crops."""
    image, mask = dsb
    for sub in ("images", "masks"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    for i, (r, c) in enumerate([(0, 0), (256, 256)]):
        tifffile.imwrite(
            tmp_path / "data" / "images" / f"crop{i}.tif", image[r : r + 256, c : c + 256]
        )
        tifffile.imwrite(
            tmp_path / "data" / "masks" / f"crop{i}.tif",
            mask[r : r + 256, c : c + 256].astype(np.uint16),
        )
    return tmp_path / "data"
