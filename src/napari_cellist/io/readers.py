"""Read microscopy images, label maps and ``images/`` + ``masks/`` folders into NumPy arrays.

TIFF / OME-TIFF / ImageJ-TIFF go through :mod:`tifffile` (pixel sizes included); PNG and JPEG
through :mod:`imageio`. Every failure becomes an :class:`ImageReadError` that names the file and
says what is wrong with it, so that napari and the CLI can show it as it is.

Axis letters follow tifffile: ``Z Y X`` spatial, ``C`` channels, ``S`` colour samples (RGB),
``T`` time, ``Q`` unknown. Singleton axes are dropped.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._formats import (
    IMAGE_EXTENSIONS,
    SPATIAL_AXES,
    ImageReadError,
    check_exists,
    check_extension,
    find_mask,
    is_image_file,
    normalise_axes,
    read_pixels,
    read_points_csv,
    stem,
)

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "AnnotatedPair",
    "ImageData",
    "ImageReadError",
    "as_label_map",
    "check_annotated_folder",
    "is_annotated_folder",
    "list_images",
    "unmatched_masks",
    "read_annotated_folder",
    "read_image",
    "read_mask",
]


@dataclass(frozen=True)
class ImageData:
    """An image read from disk.

    Parameters
    ----------
    data : np.ndarray
        Pixel data with axes ``axes`` (a read-only ``np.memmap`` for large uncompressed TIFFs).
    name : str
        File name without extension (and without ``.ome``).
    path : Path
        The file read.
    scale : tuple of float
        Pixel size per spatial axis, in the order of the ``Z``/``Y``/``X`` letters in ``axes``;
        in µm when the file says so (``unit == "µm"``), else 1.0 (``unit == "pixel"``).
    axes : str
        One letter per axis of ``data``, e.g. ``"YX"``, ``"ZYX"``, ``"CYX"``, ``"YXS"`` (RGB).
    rgb : bool
        The last axis holds RGB(A) colours (napari's ``rgb``).
    channel_axis : int or None
        Index of the ``C`` axis, if any (napari's ``channel_axis``).
    unit : str
        Unit of ``scale``.
    """

    data: np.ndarray
    name: str
    path: Path
    scale: tuple[float, ...]
    axes: str
    rgb: bool = False
    channel_axis: int | None = None
    unit: str = "pixel"

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of the ``Z``/``Y``/``X`` axes: the shape a label map of this image has."""
        return tuple(
            n for n, a in zip(self.data.shape, self.axes, strict=True) if a in SPATIAL_AXES
        )

    def layer_scale(self) -> tuple[float, ...]:
        """napari ``scale``: one value per displayed axis (not ``C``, not RGB ``S``); 1.0 for
        non-spatial axes such as ``T``."""
        sizes = dict(zip((a for a in self.axes if a in SPATIAL_AXES), self.scale, strict=True))
        shown = [
            a
            for i, a in enumerate(self.axes)
            if i != self.channel_axis and not (self.rgb and i == len(self.axes) - 1)
        ]
        return tuple(float(sizes.get(a, 1.0)) for a in shown)


@dataclass(frozen=True)
class AnnotatedPair:
    """One image of an annotated folder, with its mask and points when present.

    Parameters
    ----------
    image : ImageData
        The image.
    mask : np.ndarray or None
        int32 instance label map of ``image.spatial_shape``.
    points : np.ndarray or None
        float ``(N, ndim)`` object centres ``(row, col)`` / ``(plane, row, col)`` in pixels.
    mask_path : Path or None
        File the mask was read from.
    """

    image: ImageData
    mask: np.ndarray | None = None
    points: np.ndarray | None = None
    mask_path: Path | None = None


def read_image(path: str | os.PathLike) -> ImageData:
    """Read a TIFF / OME-TIFF / PNG / JPEG image.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    ImageData
        Pixels with singleton axes squeezed, axis letters, pixel sizes and RGB / channel flags.

    Raises
    ------
    ImageReadError
        Missing, empty, unsupported, corrupt or truncated file.
    """
    path = Path(path)
    data, axes, sizes, unit = read_pixels(path)
    data, axes, rgb, channel_axis = normalise_axes(data, axes)
    scale = tuple(float(sizes.get(a, 1.0)) for a in axes if a in SPATIAL_AXES)
    unit = unit if any(a in sizes for a in axes if a in SPATIAL_AXES) else "pixel"
    return ImageData(data, stem(path), path, scale, axes, rgb, channel_axis, unit)


def is_annotated_folder(path: str | os.PathLike) -> bool:
    """True for a folder with an ``images/`` sub-folder holding at least one image.

    ``masks/`` (label maps with the images' file names) and ``points/`` (``<stem>.csv``) are
    optional.
    """
    images = Path(path) / "images"
    return images.is_dir() and any(is_image_file(p) for p in images.iterdir())


def list_images(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """Expand files and folders into image files.

    Parameters
    ----------
    paths : path or sequence of paths
        Image files and folders. A folder contributes its image files (not recursive, sorted by
        name); an annotated folder (see :func:`is_annotated_folder`) those of its ``images/``.

    Returns
    -------
    list of Path
        Without duplicates, in the order given.

    Raises
    ------
    ImageReadError
        A path that does not exist, a symbolic-link loop, an unreadable folder, or a file with
        an unsupported extension.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    found: list[Path] = []
    for item in map(Path, paths):
        check_exists(item)
        if item.is_dir():
            folder = item / "images" if is_annotated_folder(item) else item
            try:
                found.extend(sorted(p for p in folder.iterdir() if is_image_file(p)))
            except OSError as err:
                raise ImageReadError(f"Cannot list the folder '{folder}': {err.strerror}.") from err
        else:
            check_extension(item)
            found.append(item)
    return list(dict.fromkeys(found))


def read_annotated_folder(folder: str | os.PathLike) -> list[AnnotatedPair]:
    """Read every image of an ``images/`` + ``masks/`` (+ ``points/``) folder.

    Parameters
    ----------
    folder : str or path-like
        Folder with ``images/<name>``, optional ``masks/<name>`` (same file name, or same stem
        with another image extension) and optional ``points/<stem>.csv`` (columns ``y,x`` or
        ``z,y,x``, or napari's ``axis-0,axis-1[,axis-2]``).

    Returns
    -------
    list of AnnotatedPair
        Sorted by image file name.

    Raises
    ------
    ImageReadError
        No ``images/`` folder, an unreadable file, or a mask whose shape differs from its image.
    """
    folder = Path(folder)
    check_exists(folder)
    if not is_annotated_folder(folder):
        raise ImageReadError(f"'{folder}' has no 'images/' sub-folder with image files in it.")
    _warn_unmatched_masks(folder)
    pairs = []
    for image_path in list_images([folder]):
        image = read_image(image_path)
        mask_path = find_mask(folder / "masks", image_path)
        mask = None if mask_path is None else read_mask(mask_path, image.spatial_shape)
        points_path = folder / "points" / f"{image.name}.csv"
        points = read_points_csv(points_path) if points_path.is_file() else None
        pairs.append(AnnotatedPair(image, mask, points, mask_path))
    logger.info(
        "Read %d images (%d with masks) from %s",
        len(pairs),
        sum(p.mask is not None for p in pairs),
        folder,
    )
    return pairs


def unmatched_masks(folder: str | os.PathLike) -> list[Path]:
    """Files of ``folder/masks`` whose name matches no image of ``folder/images`` (sorted).

    A mask belongs to the image with the same file name, or the same stem with another image
    extension (``masks/a.png`` for ``images/a.tif``); anything else is never read.
    """
    folder = Path(folder)
    masks = folder / "masks"
    if not masks.is_dir():
        return []
    images = {stem(p) for p in list_images([folder / "images"])}
    return sorted(p for p in masks.iterdir() if is_image_file(p) and stem(p) not in images)


def _warn_unmatched_masks(folder: Path) -> None:
    unmatched = unmatched_masks(folder)
    if unmatched:
        names = ", ".join(p.name for p in unmatched[:10]) + (", ..." if len(unmatched) > 10 else "")
        warnings.warn(
            f"{len(unmatched)} mask file(s) in '{folder / 'masks'}' match no image in images/ and "
            f"are ignored: {names} (a mask needs its image's file name).",
            UserWarning,
            stacklevel=3,
        )


def check_annotated_folder(folder: str | os.PathLike) -> None:
    """Check cheaply (file headers only) that :func:`read_annotated_folder` can read ``folder``.

    Every image and mask must be a readable file of its declared format, not truncated, small
    enough to decode, and each mask's shape must be its image's (a channel or colour axis
    aside).

    Raises
    ------
    ImageReadError
        Naming the first file that cannot be read.
    """
    from .probe import check_decodable, probe_image

    folder = Path(folder)
    if not is_annotated_folder(folder):
        raise ImageReadError(f"'{folder}' has no 'images/' sub-folder with image files in it.")
    for image_path in list_images([folder]):
        image = probe_image(image_path)
        check_decodable(image)
        mask_path = find_mask(folder / "masks", image_path)
        if mask_path is None:
            continue
        mask = probe_image(mask_path)
        check_decodable(mask)
        if np.dtype(mask.dtype).kind not in "biuf":
            raise ImageReadError(
                f"The mask '{mask_path}' holds {mask.dtype} values, not label ids."
            )
        if not _same_spatial_shape(mask.shape, image.shape):
            raise ImageReadError(
                f"The mask '{mask_path}' has shape {mask.shape} but its image has {image.shape}."
            )
    for points_path in sorted((folder / "points").glob("*.csv")):
        try:
            read_points_csv(points_path)  # small text files: read them whole
        except (ValueError, OSError, UnicodeDecodeError) as err:
            raise ImageReadError(f"Cannot read the points file '{points_path}': {err}") from err


def _same_spatial_shape(mask_shape: tuple[int, ...], image_shape: tuple[int, ...]) -> bool:
    """The mask's shape is the image's, up to singleton axes and one channel / colour axis."""
    mask = tuple(n for n in mask_shape if n > 1)
    image = tuple(n for n in image_shape if n > 1)
    return mask == image or any(mask == image[:i] + image[i + 1 :] for i in range(len(image)))


def read_mask(path: str | os.PathLike, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an instance label map (any supported image format) as int32.

    Parameters
    ----------
    path : str or path-like
        Label image: integer values, 0 = background.
    shape : tuple of int, optional
        Expected shape (the image's spatial shape).

    Raises
    ------
    ImageReadError
        Unreadable file, colour image, non-integer or negative values, or a shape mismatch.
    """
    image = read_image(path)
    if image.rgb or image.channel_axis is not None:
        raise ImageReadError(f"'{path}' has colour channels ({image.axes}); a label map has one.")
    try:
        labels = as_label_map(image.data)
    except ValueError as err:
        raise ImageReadError(f"'{path}' is not a label map: {err}") from err
    if shape is not None and labels.shape != tuple(shape):
        raise ImageReadError(
            f"The mask '{path}' has shape {labels.shape} but its image has {tuple(shape)}."
        )
    return labels


def as_label_map(array: np.ndarray) -> np.ndarray:
    """Validate an instance label map and return it as int32 (a copy only when needed).

    Raises
    ------
    ValueError
        Non-numeric, non-integer (floats with fractions), negative or > 2**31 - 1 values.
    """
    array = np.asarray(array)
    if array.dtype.kind == "b":
        return array.astype(np.int32)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"label maps hold integers, got dtype {array.dtype}.")
    if array.size == 0:
        return array.astype(np.int32)
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise ValueError(
            f"label ids must be whole numbers, got {array.dtype} values with fractions "
            "(is this an image rather than a label map?)."
        )
    low, high = array.min(), array.max()
    if low < 0:
        raise ValueError(f"label ids must be >= 0 (0 = background), found {low}.")
    if high > np.iinfo(np.int32).max:
        raise ValueError(f"label ids must fit in int32, found {high}; relabel sequentially.")
    return array.astype(np.int32, copy=False)
