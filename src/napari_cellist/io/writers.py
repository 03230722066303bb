"""Atomic file writes and label-map TIFFs.

Every file this package writes goes through :func:`atomic_open` (or the helpers built on it): the
data go to a temporary file in the target's folder that replaces the target with
:func:`os.replace` only once complete, so a crash or a full disk never leaves a half-written
annotation, checkpoint or export behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from .readers import ImageReadError, as_label_map, read_mask

logger = logging.getLogger(__name__)

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` when the block succeeds.

    For libraries that insist on writing to a file name themselves. The temporary file keeps
    the target's suffix (some writers pick the format from it) and is removed on error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or path-like
        Target file; its folder is created if needed.
    mode : str
        ``"wb"`` or ``"w"`` (then ``kwargs`` such as ``encoding`` go to :func:`open`).
    """
    if "w" not in mode or "+" in mode:
        raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', got {mode!r}.")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as file:
        yield file
        file.flush()
        os.fsync(file.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path, "wb") as file:
        file.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8 by default) and return the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def write_labels_tiff(
    path: str | os.PathLike,
    labels: np.ndarray,
    scale: Sequence[float] | None = None,
) -> Path:
    """Save an instance label map as a zlib-compressed TIFF, atomically.

    uint16 when every id is below 65536 (an ImageJ hyperstack that Fiji opens calibrated),
    else int32 (plain TIFF; the pixel size is then in the resolution tags and the Z spacing in
    tifffile's JSON description). :func:`read_labels_tiff` and
    :func:`~napari_cellist.io.readers.read_image` read both back with their pixel sizes.

    Parameters
    ----------
    path : str or path-like
        Target ``.tif`` / ``.tiff`` file.
    labels : np.ndarray
        Integer label map ``(Y, X)`` or ``(Z, Y, X)`` (more leading axes are written
        uncalibrated), ids >= 0.
    scale : sequence of float, optional
        Pixel size in µm per axis of ``labels`` (napari's layer ``scale``); None = uncalibrated.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        Not a label map (see :func:`~napari_cellist.io.readers.as_label_map`), fewer than 2
        dimensions, or a ``scale`` of the wrong length.
    """
    import tifffile

    labels = as_label_map(labels)
    if labels.ndim < 2:
        raise ValueError(f"A label map has at least 2 dimensions (Y, X), got shape {labels.shape}.")
    if scale is not None and len(scale) != labels.ndim:
        raise ValueError(
            f"scale has {len(scale)} values but the label map has {labels.ndim} axes {labels.shape}."
        )
    small = labels.max(initial=0) < 2**16
    data = labels.astype(np.uint16 if small else np.int32)
    kwargs = _calibration(labels.ndim, scale, imagej=small and labels.ndim <= 3)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, photometric="minisblack", compression="zlib", **kwargs)
    logger.info("Wrote %s label map %s to %s", data.dtype, data.shape, path)
    return Path(path)


def _calibration(ndim: int, scale: Sequence[float] | None, imagej: bool) -> dict:
    axes = "ZYX"[-ndim:] if ndim <= 3 else None
    if scale is None:
        return {"imagej": True, "metadata": {"axes": axes}} if imagej else {}
    sy, sx = float(scale[-2]), float(scale[-1])
    if min(sy, sx) <= 0:
        raise ValueError(f"Pixel sizes must be > 0, got scale {tuple(scale)}.")
    if imagej:
        metadata = {"axes": axes, "unit": "um"}
        if ndim == 3:
            metadata["spacing"] = float(scale[0])
        return {"imagej": True, "resolution": (1 / sx, 1 / sy), "metadata": metadata}
    # plain TIFF: resolution tags in pixels per centimetre (1 cm = 1e4 µm)
    metadata = {"axes": axes} if axes else {}
    if ndim == 3:
        metadata["spacing"] = float(scale[0])
    return {
        "resolution": (1e4 / sx, 1e4 / sy),
        "resolutionunit": "CENTIMETER",
        "metadata": metadata,
    }


def read_labels_tiff(path: str | os.PathLike) -> np.ndarray:
    """Read a label-map TIFF as int32.

    Parameters
    ----------
    path : str or path-like
        TIFF holding one integer channel, 0 = background.

    Returns
    -------
    np.ndarray
        int32 label map, singleton axes squeezed.

    Raises
    ------
    ImageReadError
        (a ValueError) The file cannot be read (missing, empty, corrupt, not a TIFF), or it is
        not a label map: colour channels, non-integer or negative values.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise ImageReadError(f"'{path}' is not a TIFF file (.tif / .tiff).")
    return read_mask(path)
