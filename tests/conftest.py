"""Shared fixtures: real images from ../shared/data (CC0 / CTC / Coelho, see their SOURCE.md)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

DATA = Path(os.environ.get("CELLIST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_configure(config):
    if not DATA.is_dir():
        raise pytest.UsageError(f"The real test data is missing: {DATA} (set CELLIST_DATA).")


def read_pair(folder: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, int32 mask) of one annotated image of ../shared/data."""
    image = tifffile.imread(DATA / folder / "images" / name)
    mask = tifffile.imread(DATA / folder / "masks" / name).astype(np.int32)
    return image, mask


@pytest.fixture(scope="session")
def dsb() -> tuple[np.ndarray, np.ndarray]:
    """The 512x512 DSB2018 nuclei image (uint16 container) and its 125-object mask."""
    return read_pair("dsb2018_stardist", "dsb2018_img2d.tif")


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
        tifffile.imwrite(tmp_path / "data" / "images" / f"crop{i}.tif", image[r : r + 256, c : c + 256])
        tifffile.imwrite(tmp_path / "data" / "masks" / f"crop{i}.tif", mask[r : r + 256, c : c + 256].astype(np.uint16))
    return tmp_path / "data"
