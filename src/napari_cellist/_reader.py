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
    AnnotatedPair,
    ImageData,
    ImageReadError,
    check_annotated_folder,
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
    ``images/`` + ``masks/`` folder included). Every file is checked cheaply first (its header:
    the format its extension names, not truncated, small enough to decode; a folder's masks
    too), so that napari offers the file to another plugin rather than to a reader that would
    fail. Never raises.
    """
    try:
        paths = [path] if isinstance(path, str | os.PathLike) else list(path)
        if paths and all(_is_lazy(Path(p)) or _supported(Path(p)) for p in paths):
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
        Only the first image (and its masks / points) is visible, so that a folder does not
        open as a pile of stacked layers; grey images get percentile contrast limits.

    Raises
    ------
    ImageReadError
        With a message naming the file that could not be read.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[LayerData] = []
    for item in map(Path, paths):
        if _is_lazy(item):  # OME-Zarr, large / pyramidal TIFF: dask arrays, read on demand
            layers.extend(_lazy_layers(item, visible=not layers))
        elif item.is_dir() and is_annotated_folder(item):
            for pair in read_annotated_folder(item):
                layers.extend(_pair_layers(pair, visible=not layers))
        else:
            for p in list_images([item]):
                layers.append(_image_layer(read_image(p), visible=not layers))
    return layers


def _is_lazy(path: Path) -> bool:
    """An OME-Zarr folder, a pyramidal TIFF, or a large flat TIFF whose plane napari can hold.

    napari draws a single-level image by loading the whole plane in view, so a flat TIFF is
    opened lazily only when that plane fits in the memory at hand (:func:`.io.probe.check_decodable`);
    otherwise the cheap checks decline it and napari can offer it to another plugin.
    """
    from .io.lazy import is_large, is_lazy_path, is_pyramidal
    from .io.probe import ImageReadError, check_decodable, probe_image

    if not (path.exists() and is_lazy_path(path)):
        return False
    if path.is_dir() or is_pyramidal(path):
        return True
    if not is_large(path):
        return False
    try:
        check_decodable(probe_image(path))
    except ImageReadError:
        return False
    return True


def _lazy_layers(path: Path, visible: bool = True) -> list[LayerData]:
    """napari multiscale image layers of dask arrays (the napari-ome-zarr convention)."""
    from .io.lazy import lazy_layer_data

    layers = []
    for data, kwargs, kind in lazy_layer_data(path):
        kwargs.update(visible=visible, metadata={"cellist_path": str(path), "lazy": True})
        layers.append((data, kwargs, kind))
    return layers


def _supported(path: Path) -> bool:
    """Cheap checks (headers only) that :func:`read_layers` can read ``path``."""
    from .io.probe import check_decodable, probe_image

    try:
        if path.is_dir() and is_annotated_folder(path):
            check_annotated_folder(path)
            return True
        images = list_images([path])
        for image_path in images:
            check_decodable(probe_image(image_path))
    except (ImageReadError, OSError) as err:
        logger.debug("Cellist declines %s: %s", path, err)
        return False
    return bool(images)


def _image_layer(image: ImageData, visible: bool = True) -> LayerData:
    kwargs = {
        "name": image.name,
        "scale": image.layer_scale(),
        "rgb": image.rgb,
        "channel_axis": image.channel_axis,
        "visible": visible,
        "metadata": {"cellist_path": str(image.path), "axes": image.axes, "unit": image.unit},
    }
    limits = _contrast_limits(image)
    if limits is not None:
        kwargs["contrast_limits"] = limits
    return image.data, kwargs, "image"


def _contrast_limits(image: ImageData) -> Any:
    """Percentile limits per grey image or per channel; None for RGB (napari's own)."""
    import numpy as np

    from .images import display_range

    if image.rgb or image.data.dtype.kind not in "biuf":
        return None
    if image.channel_axis is None:
        return display_range(image.data)
    channels = np.moveaxis(image.data, image.channel_axis, 0)
    return [display_range(channel) for channel in channels]


def _pair_layers(pair: AnnotatedPair, visible: bool = True) -> list[LayerData]:
    image = pair.image
    layers = [_image_layer(image, visible)]
    spatial_scale = image.scale
    if pair.mask is not None:
        kwargs = {
            "name": f"{image.name} masks",
            "scale": spatial_scale,
            "visible": visible,
            "metadata": {"cellist_path": str(pair.mask_path), "cellist_image": str(image.path)},
        }
        layers.append((pair.mask, kwargs, "labels"))
    if pair.points is not None and pair.points.shape[1] == len(spatial_scale):
        kwargs = {
            "name": f"{image.name} points",
            "scale": spatial_scale,
            "size": 5,
            "visible": visible,
            "metadata": {"cellist_image": str(image.path)},
        }
        layers.append((pair.points, kwargs, "points"))
    return layers
