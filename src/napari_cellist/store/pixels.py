"""Pixel data in the store: content hashes, compressed blobs, reading an image back from disk."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zlib
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def as_pixel_array(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous numeric / bool array; ValueError for anything else."""
    array = np.ascontiguousarray(np.asarray(image))
    if array.dtype.kind not in "biufc" or array.size == 0:
        raise ValueError(
            f"Cannot store an image of dtype {array.dtype} and shape {array.shape}; a non-empty "
            "numeric array is needed."
        )
    return array


def hash_image(image: np.ndarray) -> str:
    """SHA-256 hex digest of an image's dtype (with byte order), shape and pixel bytes.

    Two arrays get the same hash exactly when they hold the same values in the same dtype and
    shape, whatever their memory layout.
    """
    array = as_pixel_array(image)
    digest = hashlib.sha256()
    digest.update(array.dtype.str.encode("ascii"))
    digest.update(repr(tuple(int(s) for s in array.shape)).encode("ascii"))
    digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def pack_pixels(image: np.ndarray, level: int = 6) -> bytes:
    """zlib-compressed ``np.save`` bytes of ``image`` (no pickles); ``level`` 1 (fast) - 9."""
    buffer = io.BytesIO()
    np.save(buffer, as_pixel_array(image), allow_pickle=False)
    return zlib.compress(buffer.getvalue(), level=level)


def unpack_pixels(blob: bytes) -> np.ndarray:
    """Inverse of :func:`pack_pixels`."""
    return np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)


def is_readable_file(path: str | os.PathLike | None) -> bool:
    """True when ``path`` names an existing file (or folder, e.g. zarr) this process can read."""
    return path is not None and Path(path).exists() and os.access(path, os.R_OK)


def read_path(path: str | os.PathLike) -> np.ndarray:
    """Pixels of the image file ``path``, read with :func:`napari_cellist.io.read_image`."""
    from ..io import read_image  # io depends on tifffile/imageio; import only when needed

    return np.asarray(read_image(path).data)


def file_sha256(path: str | os.PathLike | None) -> str | None:
    """SHA-256 hex digest of a file's bytes, or None when ``path`` is not a readable file."""
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError:
        logger.warning("cannot read checkpoint %s to hash it", path, exc_info=True)
        return None
    return digest.hexdigest()
