"""npe2 sample data: the DSB2018 nuclei image shipped in ``sample_data/`` (see its SOURCE.md)."""

from __future__ import annotations

import atexit
import contextlib
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from .io.readers import read_image
from .io.writers import read_labels_tiff

SAMPLE_IMAGE = "nuclei_dsb2018.tif"
SAMPLE_MASK = "nuclei_dsb2018_masks.tif"

_extracted = contextlib.ExitStack()  # keeps resources extracted from a zipped install alive
atexit.register(_extracted.close)


def sample_image_path() -> Path:
    """Path of the sample nuclei image: 512x512 uint16, 125 nuclei of ~24 px diameter."""
    return _resource(SAMPLE_IMAGE)


def sample_mask_path() -> Path:
    """Path of the sample image's ground-truth label map (uint16, ids 1..125)."""
    return _resource(SAMPLE_MASK)


def make_nuclei_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """The sample nuclei image as one napari image layer named ``"nuclei"``."""
    path = sample_image_path()
    image = read_image(path)
    kwargs = {
        "name": "nuclei",
        "scale": image.layer_scale(),
        "metadata": {"cellist_path": str(path)},
    }
    return [(image.data, kwargs, "image")]


def make_nuclei_sample_with_truth() -> list[tuple[Any, dict[str, Any], str]]:
    """The sample image plus its ground truth as a labels layer ``"nuclei ground truth"``."""
    layers = make_nuclei_sample()
    path = sample_mask_path()
    kwargs = {
        "name": "nuclei ground truth",
        "scale": layers[0][1]["scale"],
        "metadata": {"cellist_path": str(path)},
    }
    return [*layers, (read_labels_tiff(path), kwargs, "labels")]


def _resource(name: str) -> Path:
    resource = files("napari_cellist") / "sample_data" / name
    if isinstance(resource, Path):
        return resource
    return _extracted.enter_context(as_file(resource))
