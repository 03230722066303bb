"""npe2 reader: microscopy images and ``images/`` + ``masks/`` folders as napari layers.

Thin: the reading is :mod:`napari_cellist.io.readers`; this module only turns
:class:`~napari_cellist.io.readers.ImageData` into napari ``LayerData`` tuples.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .io.readers import (
    IMAGE_EXTENSIONS,
    AnnotatedPair,
    ImageData,
    is_annotated_folder,
    list_images,
    read_annotated_folder,
    read_image,
)

logger = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]
PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]
ReaderFunction = Callable[[PathOrPaths], list[LayerData]]


def napari_get_reader(path: PathOrPaths) -> ReaderFunction | None:
    """Return :func:`read_layers` when every path is something Cellist reads, else None.

    Supported: TIFF / OME-TIFF / PNG / JPEG files and folders holding such images (an
    ``images/`` + ``masks/`` folder included). Never raises.
    """
    try:
        paths = [path] if isinstance(path, str | os.PathLike) else list(path)
        if paths and all(_supported(Path(p)) for p in paths):
            return read_layers
    except Exception:  # napari asks every plugin; a surprise must not break its dialog
        logger.debug("Cellist cannot read %r", path, exc_info=True)
    return None


def read_layers(path: PathOrPaths) -> list[LayerData]:
    """Read images (and masks / points of annotated folders) as napari layer data.

    Returns
    -------
    list of (data, kwargs, layer_type)
        One ``"image"`` layer per image; for an annotated folder also a ``"labels"`` layer
        ``"<stem> masks"`` per mask and a ``"points"`` layer ``"<stem> points"`` per points file.

    Raises
    ------
    ImageReadError
        With a message naming the file that could not be read.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[LayerData] = []
    for item in map(Path, paths):
        if item.is_dir() and is_annotated_folder(item):
            for pair in read_annotated_folder(item):
                layers.extend(_pair_layers(pair))
        else:
            layers.extend(_image_layer(read_image(p)) for p in list_images([item]))
    return layers


def _supported(path: Path) -> bool:
    if path.is_dir():
        return bool(list_images([path]))
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _image_layer(image: ImageData) -> LayerData:
    kwargs = {
        "name": image.name,
        "scale": image.layer_scale(),
        "rgb": image.rgb,
        "channel_axis": image.channel_axis,
        "metadata": {"cellist_path": str(image.path), "axes": image.axes, "unit": image.unit},
    }
    return image.data, kwargs, "image"


def _pair_layers(pair: AnnotatedPair) -> list[LayerData]:
    image = pair.image
    layers = [_image_layer(image)]
    spatial_scale = image.scale
    if pair.mask is not None:
        kwargs = {
            "name": f"{image.name} masks",
            "scale": spatial_scale,
            "metadata": {"cellist_path": str(pair.mask_path), "cellist_image": str(image.path)},
        }
        layers.append((pair.mask, kwargs, "labels"))
    if pair.points is not None and pair.points.shape[1] == len(spatial_scale):
        kwargs = {
            "name": f"{image.name} points",
            "scale": spatial_scale,
            "size": 5,
            "metadata": {"cellist_image": str(image.path)},
        }
        layers.append((pair.points, kwargs, "points"))
    return layers
