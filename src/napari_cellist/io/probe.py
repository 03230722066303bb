"""Cheap checks of an image file before its pixels are decoded.

:func:`probe_image` reads only the header (TIFF IFDs through :mod:`tifffile`, PNG / JPEG through
Pillow's lazy ``Image.open``): the declared shape and dtype, whether the file holds as many bytes
as its header promises, and whether the decoded pixels fit in memory. A 1.7 MB zlib TIFF that
declares 40,000 x 40,000 pixels is refused here with one sentence instead of a ``MemoryError``
half-way through decoding, and the napari reader uses the same probe to decline files it could
not read (so that another plugin may try).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._formats import TIFF_EXTENSIONS, ImageReadError, check_file

logger = logging.getLogger(__name__)

#: Share of the available memory one decoded image may take.
MEMORY_SHARE = 0.8
_PIL_DTYPES = {
    "I;16": np.uint16,
    "I;16B": np.uint16,
    "I;16L": np.uint16,
    "I": np.int32,
    "F": np.float32,
}


class ImageTooLargeError(ImageReadError):
    """An image whose pixels would not fit in the memory available."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image file declares, read without decoding pixels.

    Parameters
    ----------
    path : Path
        The file.
    shape : tuple of int
        Declared shape of the first series (TIFF) or of the frame (PNG / JPEG), before
        singleton axes are dropped; colour samples last.
    dtype : np.dtype
        Declared pixel type.
    memmappable : bool
        Uncompressed contiguous TIFF data that can be memory-mapped instead of loaded.
    """

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    memmappable: bool = False

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded pixels."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def describe(self) -> str:
        """``"40000 x 40000 uint8 (1.6 GB)"``."""
        dims = " x ".join(map(str, self.shape))
        return f"{dims} {np.dtype(self.dtype).name} ({format_bytes(self.nbytes)})"


def probe_image(path: str | os.PathLike) -> ImageHeader:
    """Read an image file's header and check it cheaply, without decoding its pixels.

    Parameters
    ----------
    path : str or path-like
        TIFF / OME-TIFF / PNG / JPEG file.

    Returns
    -------
    ImageHeader
        Declared shape and dtype.

    Raises
    ------
    ImageReadError
        Missing, empty, unsupported, not the format its extension says, truncated, or no image.
    """
    path = Path(path)
    check_file(path)
    try:
        if path.suffix.lower() in TIFF_EXTENSIONS:
            return _probe_tiff(path)
        return _probe_pillow(path)
    except ImageReadError:
        raise
    except Exception as err:  # tifffile / Pillow raise many types for foreign files
        kind = "TIFF" if path.suffix.lower() in TIFF_EXTENSIONS else path.suffix.lstrip(".").upper()
        raise ImageReadError(
            f"Cannot read '{path}': the file is corrupt, truncated or not a {kind} image "
            f"({type(err).__name__}: {first_line(err)})."
        ) from err


def _probe_tiff(path: Path) -> ImageHeader:
    import tifffile

    from ._formats import check_not_truncated

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ImageReadError(f"'{path}' is a damaged TIFF: it holds no readable image.")
        series = tif.series[0]
        check_not_truncated(path, series)
        return ImageHeader(
            path, tuple(series.shape), np.dtype(series.dtype), series.dataoffset is not None
        )


def _probe_pillow(path: Path) -> ImageHeader:
    from PIL import Image

    try:
        opened = Image.open(path)
    except Image.DecompressionBombError as err:  # Pillow's own limit, from the header
        raise ImageTooLargeError(
            f"'{path}' declares more pixels than Pillow decodes safely ({first_line(err)}); "
            "crop it or split it into tiles first, or save it as a TIFF."
        ) from err
    with opened as image:
        width, height = image.size
        bands = len(image.getbands())
        dtype = np.dtype(_PIL_DTYPES.get(image.mode, np.uint8))
        if image.format == "PNG":
            image.verify()  # walks the chunks and their checksums: finds truncated files
    shape = (height, width) if bands == 1 else (height, width, bands)
    return ImageHeader(path, shape, dtype)


def available_memory() -> int | None:
    """Bytes of memory available to this process now (None when the system does not say)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed: int, what: str) -> None:
    """Raise :class:`ImageTooLargeError` when ``needed`` bytes exceed the memory at hand.

    Parameters
    ----------
    needed : int
        Bytes the operation will allocate.
    what : str
        The operation and its input, e.g. ``"'big.tif' declares 40000 x 40000 uint8 (1.6 GB);
        decoding it"``; the message continues with ``"needs ... but only ... are available"``.
    """
    available = available_memory()
    if available is None or needed <= MEMORY_SHARE * available:
        return
    raise ImageTooLargeError(
        f"{what} needs {format_bytes(needed)} of memory but {format_bytes(available)} are "
        "available: crop it or split it into tiles first (e.g. Fiji: Image > Crop)."
    )


def check_decodable(header: ImageHeader) -> None:
    """Refuse an image whose decoded pixels would not fit in memory (memory-mapped TIFFs pass)."""
    if header.memmappable:
        return
    check_memory(header.nbytes, f"'{header.path}' declares {header.describe()}; decoding it")


def format_bytes(n: float) -> str:
    """``1.6 GB``-style size (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (some libraries write paragraphs)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
