"""File-format back ends of :mod:`.readers`: TIFF (pixel sizes via :mod:`._pixel_sizes`),
PNG / JPEG, points CSV, axis normalisation, and the file-naming rules of image folders."""

from __future__ import annotations

import csv
import errno
import logging
from pathlib import Path

import numpy as np

from ._pixel_sizes import pixel_sizes

logger = logging.getLogger(__name__)

TIFF_EXTENSIONS = (".tif", ".tiff")
IMAGE_EXTENSIONS = (*TIFF_EXTENSIONS, ".png", ".jpg", ".jpeg")
#: Uncompressed TIFFs above this size are memory-mapped instead of loaded.
MEMMAP_BYTES = 256 * 2**20
SPATIAL_AXES = "ZYX"
_FORMAT_NAMES = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


class ImageReadError(ValueError):
    """A file cannot be read as an image; the message names the file and the reason."""


def read_points_csv(path: str | Path) -> np.ndarray:
    """Read object centres from a CSV file.

    Parameters
    ----------
    path : str or Path
        CSV with a header naming ``y,x`` or ``z,y,x`` columns (any order, other columns
        ignored), napari's ``axis-0,axis-1[,axis-2]`` columns, or no header (all columns are
        coordinates in ``(row, col)`` / ``(plane, row, col)`` order).

    Returns
    -------
    np.ndarray
        float ``(N, ndim)`` coordinates ``(row, col)`` or ``(plane, row, col)`` in pixels.
    """
    with open(path, newline="", encoding="utf-8") as file:
        rows = [r for r in csv.reader(file) if r and any(c.strip() for c in r)]
    if not rows:
        return np.zeros((0, 2))
    header = [c.strip().lower() for c in rows[0]]
    columns = _coordinate_columns(header)
    body = rows[1:] if columns is not None else rows
    if columns is None:
        columns = list(range(len(header)))
    try:
        points = np.array([[float(r[i]) for i in columns] for r in body], float)
    except (ValueError, IndexError) as err:
        raise ValueError(f"'{path}' is not a points CSV with columns y,x[,z]: {err}") from err
    return points.reshape(len(body), len(columns))


def _coordinate_columns(header: list[str]) -> list[int] | None:
    if {"y", "x"} <= set(header):
        names = ["z", "y", "x"] if "z" in header else ["y", "x"]
        return [header.index(n) for n in names]
    napari = sorted((h for h in header if h.startswith("axis-")), key=lambda h: int(h[5:]))
    if len(napari) >= 2:
        return [header.index(h) for h in napari]
    try:
        [float(h) for h in header]
    except ValueError as err:
        raise ValueError(f"Points CSV header {header} names no y,x columns.") from err
    return None


def check_file(path: Path) -> None:
    """Raise ImageReadError unless ``path`` is a non-empty file with a supported extension."""
    check_exists(path)
    if path.is_dir():
        raise ImageReadError(f"'{path}' is a folder, not an image file.")
    check_extension(path)
    if not path.is_file():
        raise ImageReadError(f"'{path}' is not a regular file.")
    if path.stat().st_size == 0:
        raise ImageReadError(f"'{path}' is empty (0 bytes).")


def check_exists(path: Path) -> None:
    """Raise ImageReadError when ``path`` is missing, a symbolic-link loop or inaccessible."""
    try:
        path.stat()
    except FileNotFoundError:
        kind = "broken symbolic link" if path.is_symlink() else "file or folder"
        raise ImageReadError(f"'{path}' does not exist (no such {kind}).") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ImageReadError(
                f"'{path}' is a symbolic link that loops back on itself."
            ) from None
        raise ImageReadError(f"Cannot access '{path}': {err.strerror}.") from None


def check_extension(path: Path) -> None:
    """Raise ImageReadError unless ``path`` has one of :data:`IMAGE_EXTENSIONS`."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ImageReadError(
            f"Cannot read '{path}': unsupported file type '{path.suffix}'. Supported: "
            f"{', '.join(IMAGE_EXTENSIONS)} (convert other formats to OME-TIFF, e.g. with Fiji)."
        )


def is_image_file(path: Path) -> bool:
    """A visible file with an image extension (skips ``.hidden`` / ``._mac`` files)."""
    return (
        path.is_file()
        and not path.name.startswith(".")
        and (path.suffix.lower() in IMAGE_EXTENSIONS)
    )


def find_mask(masks: Path, image_path: Path) -> Path | None:
    """The mask of ``image_path`` in ``masks/``: same file name, else same stem, else None."""
    if not masks.is_dir():
        return None
    same = masks / image_path.name
    if same.is_file():
        return same
    name = stem(image_path)
    candidates = [p for p in sorted(masks.iterdir()) if is_image_file(p) and stem(p) == name]
    return candidates[0] if candidates else None


def stem(path: Path) -> str:
    """File name without extension and without ``.ome``."""
    name = path.name[: -len(path.suffix)] if path.suffix else path.name
    return name[:-4] if name.lower().endswith(".ome") else name


def read_tiff(path: Path) -> tuple[np.ndarray, str, dict[str, float], str]:
    """``(data, axes, {axis: pixel size}, unit)`` of the first series of a TIFF."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ImageReadError(f"'{path}' is a damaged TIFF: it holds no readable image.")
        series = tif.series[0]
        check_not_truncated(path, series)
        axes = series.axes
        sizes, unit = pixel_sizes(tif)
        big = series.nbytes > MEMMAP_BYTES and series.dataoffset is not None
        if big:
            logger.info("Memory-mapping %s (%.1f GiB)", path, series.nbytes / 2**30)
        data = tifffile.memmap(path, series=0, mode="r") if big else series.asarray()
    return data.reshape(series.shape), axes, sizes, unit


def check_not_truncated(path: Path, series) -> None:
    """Raise ImageReadError when the pixel data of ``series`` run past the end of the file."""
    size = path.stat().st_size
    for page in series.pages:
        if page is None:
            continue
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False) if n]
        if ends and max(ends) > size:
            raise ImageReadError(
                f"'{path}' is truncated: its pixel data needs {max(ends)} bytes but the file has "
                f"{size} (an interrupted copy or download?)."
            )


def read_plain(path: Path) -> tuple[np.ndarray, str, dict[str, float], str]:
    """``(data, axes, {}, "pixel")`` of a PNG / JPEG (grey + alpha keeps the grey)."""
    import imageio.v3 as iio

    data = np.asarray(iio.imread(path, plugin="pillow"))
    if data.ndim == 3 and data.shape[-1] == 2:  # grey + alpha
        data = data[..., 0]
    if data.ndim == 2:
        axes = "YX"
    elif data.ndim == 3:
        axes = "YXS" if data.shape[-1] in (3, 4) else "QYX"  # colour, or frames of grey
    else:
        axes = "QYXS"[-data.ndim :]
    return data, axes, {}, "pixel"


def read_pixels(path: Path) -> tuple[np.ndarray, str, dict[str, float], str]:
    """``(data, axes, {axis: pixel size}, unit)`` of an image file; ImageReadError otherwise."""
    from .probe import check_decodable, first_line, probe_image

    check_decodable(probe_image(path))  # header only: refuses what cannot be decoded in memory
    try:
        if path.suffix.lower() in TIFF_EXTENSIONS:
            return read_tiff(path)
        return read_plain(path)
    except ImageReadError:
        raise
    except Exception as err:  # tifffile / imageio / codecs raise many types
        raise ImageReadError(
            f"Cannot read '{path}': the file is corrupt, truncated or not a "
            f"{_FORMAT_NAMES[path.suffix.lower()]} image ({type(err).__name__}: {first_line(err)})."
        ) from err


def normalise_axes(data: np.ndarray, axes: str) -> tuple[np.ndarray, str, bool, int | None]:
    """Drop singleton axes; name a lone unknown stack axis ``Z``; find RGB and channels.

    Returns
    -------
    tuple
        ``(data, axes, rgb, channel_axis)``; ``S`` axes that are not RGB(A) become ``C``.
    """
    if data.size == 0:
        raise ImageReadError(f"The image has no pixels (shape {data.shape}).")
    keep = [i for i, n in enumerate(data.shape) if n > 1 or axes[i] in "YX"]
    data = data.reshape(tuple(data.shape[i] for i in keep))
    axes = "".join(axes[i] for i in keep)
    unknown = [a for a in axes if a in "QI"]
    if len(unknown) == 1 and "Z" not in axes and len(axes) == 3:
        axes = axes.replace(unknown[0], "Z")  # a plain multi-page TIFF: pages are planes
    rgb = axes.endswith("S") and data.shape[-1] in (3, 4)
    channel_axis = axes.index("C") if "C" in axes else None
    if axes.endswith("S") and not rgb and channel_axis is None:
        axes = axes[:-1] + "C"
        channel_axis = len(axes) - 1
    return data, axes, rgb, channel_axis
