"""Where the benchmarks find their data and write their results.

The real annotated folders (``<name>/images/*.tif`` + ``<name>/masks/*.tif``) are looked up in
``$CELLIST_DATA``, or in ``../shared/data`` relative to the repository root when it is unset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DATA_ENV = "CELLIST_DATA"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def data_root() -> Path:
    """The folder that holds the annotated data sets.

    Returns
    -------
    Path
        ``$CELLIST_DATA`` when set, else ``<repository>/../shared/data``.

    Raises
    ------
    ValueError
        If the folder does not exist (the message says how to point at another one).
    """
    root = Path(os.environ.get(DATA_ENV, DEFAULT_DATA)).expanduser()
    if not root.is_dir():
        raise ValueError(
            f"benchmark data folder {root} does not exist; set {DATA_ENV} to a folder holding "
            "the annotated data sets (<name>/images/*.tif and <name>/masks/*.tif)"
        )
    return root


def data_folder(name: str) -> Path:
    """One annotated data set, e.g. ``data_folder("coelho2009_u2os")``.

    Parameters
    ----------
    name : str
        Folder name under :func:`data_root`.

    Returns
    -------
    Path
        The folder, which holds ``images/`` and ``masks/``.

    Raises
    ------
    ValueError
        If the folder is missing.
    """
    folder = data_root() / name
    if not folder.is_dir():
        known = sorted(p.name for p in data_root().iterdir() if p.is_dir())
        raise ValueError(f"no data set {name!r} in {data_root()}; known: {', '.join(known)}")
    return folder


def result_path(file_name: str) -> Path:
    """Default path of a result JSON: ``benchmarks/results/<file_name>``."""
    return RESULTS / file_name


def tiled_real_image(size: int, pattern: str = "ctc_gowt1_hela/images/gowt1_*.tif") -> np.ndarray:
    """A ``(size, size)`` grey image made by tiling the real images matching ``pattern`` (under
    :func:`data_root`) side by side, mirrored at odd positions so that the seams look like
    continuous tissue; for speed and memory benchmarks at sizes no real data set has.

    Raises
    ------
    ValueError
        If no image matches ``pattern``.
    """
    import tifffile

    paths = sorted(data_root().glob(pattern))
    if not paths:
        raise ValueError(f"no image matches {pattern!r} under {data_root()}")
    tiles = [tifffile.imread(p) for p in paths]
    rows, cols = min(t.shape[0] for t in tiles), min(t.shape[1] for t in tiles)
    tiles = [t[:rows, :cols] for t in tiles]
    out = np.empty((size, size), tiles[0].dtype)
    for i, r0 in enumerate(range(0, size, rows)):
        for j, c0 in enumerate(range(0, size, cols)):
            tile = tiles[(i * 7 + j) % len(tiles)]
            tile = tile[::-1] if i % 2 else tile
            tile = tile[:, ::-1] if j % 2 else tile
            out[r0 : r0 + rows, c0 : c0 + cols] = tile[: size - r0, : size - c0]
    return out
