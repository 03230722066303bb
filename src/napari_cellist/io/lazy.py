"""Images larger than memory, opened lazily as dask arrays (the way napari shows them).

OME-Zarr folders (the ``multiscales`` metadata of OME-NGFF 0.4 in ``.zattrs`` or 0.5 under
``ome`` in ``zarr.json``) and TIFFs (BigTIFF, tiled, pyramidal: ``tifffile.imread(aszarr=True)``
exposes them as a zarr store with the same ``multiscales`` metadata) both become a list of dask
arrays, full resolution first, read chunk by chunk on demand: napari's multiscale image layer
data (the napari-ome-zarr reader convention). Nothing is read until a chunk is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
#: Images of more bytes or pixels than this (full resolution) are opened lazily and predicted
#: tile by tile (a whole-image prediction needs ~48 bytes a pixel: 8192^2 pixels ~ 3 GB).
LARGE_BYTES = 1 << 30
LARGE_PIXELS = 8192 * 8192
SPATIAL = "zyx"


@dataclass(frozen=True)
class LazyImage:
    """A lazily read image.

    Parameters
    ----------
    levels : tuple of dask.array.Array
        Resolution levels, full resolution first (one level for a flat image).
    axes : str
        Axis names of every level, lower case, e.g. ``"yx"``, ``"cyx"``, ``"tczyx"``, ``"yxs"``
        (``s``: RGB samples).
    path : Path
        Where it was read from.
    """

    levels: tuple[Any, ...]
    axes: str
    path: Path

    @property
    def data(self) -> Any:
        """The full-resolution dask array."""
        return self.levels[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the full-resolution level."""
        return int(self.data.nbytes)

    def grey(self, channel: int = 0) -> Any:
        """The spatial ``(Y, X)`` or ``(Z, Y, X)`` grey dask array of full resolution: ``channel``
        of a ``c`` axis, the first time point, RGB samples averaged (still lazy).

        Raises
        ------
        ValueError
            If ``channel`` is out of range.
        """
        import dask.array as da

        data, axes = self.data, self.axes
        index: list[Any] = []
        for name, size in zip(axes, data.shape, strict=True):
            if name == "c":
                if not 0 <= channel < size:
                    raise ValueError(f"Channel {channel} out of range: {self.path} has {size}.")
                index.append(channel)
            elif name in SPATIAL or name == "s":
                index.append(slice(None))
            else:
                index.append(0)
        data = data[tuple(index)]
        kept = [a for a in axes if a in SPATIAL or a == "s"]
        if "s" in kept:
            data = da.mean(data, axis=kept.index("s"), dtype="float32")
            kept.remove("s")
        if "z" in kept and data.shape[kept.index("z")] == 1:
            data = data[(slice(None),) * kept.index("z") + (0,)]
        return data


def is_lazy_path(path: str | Path) -> bool:
    """An OME-Zarr / zarr folder or a TIFF (what :func:`open_lazy` reads)."""
    path = Path(path)
    return path.suffix.lower() == ".zarr" or _is_zarr_folder(path) or _is_tiff(path)


def is_large(path: str | Path, limit: int = LARGE_BYTES) -> bool:
    """True when the full-resolution image at ``path`` holds more than ``limit`` bytes or
    :data:`LARGE_PIXELS` pixels, is a
    pyramidal TIFF or an OME-Zarr folder (always read lazily); False for a file that cannot be
    read as TIFF (the eager reader reports why)."""
    path = Path(path)
    if path.suffix.lower() == ".zarr" or _is_zarr_folder(path):
        return True
    if not _is_tiff(path):
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            nbytes = series.size * series.dtype.itemsize
            return nbytes > limit or series.size > LARGE_PIXELS or len(series.levels) > 1
    except (tifffile.TiffFileError, OSError, ValueError, IndexError):
        return False  # not readable as TIFF: the eager reader reports why


def is_pyramidal(path: str | Path) -> bool:
    """True for a TIFF with more than one resolution level (a whole-slide / pyramidal image)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.series[0].levels) > 1
    except (tifffile.TiffFileError, OSError, ValueError, IndexError):
        return False


def open_lazy(path: str | Path) -> LazyImage:
    """Open an OME-Zarr / zarr folder or a TIFF lazily.

    Parameters
    ----------
    path : str or Path
        ``*.zarr`` folder (OME-Zarr group with ``multiscales``, or a plain zarr array) or TIFF.

    Returns
    -------
    LazyImage
        Dask arrays for every resolution level.

    Raises
    ------
    ValueError
        If the path does not exist, is neither zarr nor TIFF, or holds no image array.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist.")
    if _is_tiff(path):
        import tifffile

        node = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
        default_axes = _tiff_axes(path)
    elif path.is_dir():
        node = zarr.open(str(path), mode="r")
        default_axes = None
    else:
        raise ValueError(
            f"{path} is neither an OME-Zarr folder nor a TIFF; open other formats with "
            "napari_cellist.io.readers."
        )
    levels, axes = _levels(node, path)
    axes = axes or default_axes or _guess_axes(levels[0].shape)
    if len(axes) != levels[0].ndim:
        logger.warning("axes %r do not match shape %s of %s; guessing", axes, levels[0].shape, path)
        axes = _guess_axes(levels[0].shape)
    return LazyImage(tuple(levels), axes, path)


def lazy_layer_data(path: str | Path) -> list[tuple[Any, dict, str]]:
    """napari layer data for a lazy image: ``[(levels, {"multiscale": ..., ...}, "image")]``;
    channels become separate layers (``channel_axis``), like the napari-ome-zarr reader."""
    image = open_lazy(path)
    kwargs: dict[str, Any] = {"name": image.path.name.split(".")[0]}
    multiscale = len(image.levels) > 1
    kwargs["multiscale"] = multiscale
    if "c" in image.axes:
        kwargs["channel_axis"] = image.axes.index("c")
    if "s" in image.axes:
        kwargs["rgb"] = True
    data = list(image.levels) if multiscale else image.levels[0]
    return [(data, kwargs, "image")]


def _levels(node: Any, path: Path) -> tuple[list[Any], str | None]:
    import dask.array as da
    import zarr

    if isinstance(node, zarr.Array):
        return [da.from_zarr(node)], None
    attrs = dict(node.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if multiscales:
        first = multiscales[0]
        paths = [d["path"] for d in first.get("datasets", [])]
        axes = _axes_names(first.get("axes"))
    else:  # a group of arrays without metadata: its arrays, largest first
        arrays = sorted(node.arrays(), key=lambda kv: -kv[1].size)
        paths, axes = [name for name, _ in arrays], None
    if not paths:
        raise ValueError(f"{path} holds no image array (no 'multiscales' datasets, no arrays).")
    return [da.from_zarr(node[p]) for p in paths], axes


def _axes_names(axes: Any) -> str | None:
    if not axes:
        return None
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    return "".join(n[0].lower() for n in names)


def _tiff_axes(path: Path) -> str | None:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        axes = tif.series[0].axes.lower()
    # tifffile: s = samples (RGB), q/i = unknown sequence
    return "".join("c" if a in "qi" else a for a in axes)


def _guess_axes(shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return "yx"
    if len(shape) == 3:
        return "yxs" if shape[-1] in (3, 4) else ("cyx" if shape[0] <= 8 else "zyx")
    return "tczyx"[-len(shape) :] if len(shape) <= 5 else "".join("c" for _ in shape)


def _is_zarr_folder(path: Path) -> bool:
    return path.is_dir() and any(
        (path / n).exists() for n in (".zattrs", ".zarray", ".zgroup", "zarr.json")
    )


def _is_tiff(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TIFF_SUFFIXES
