"""npe2 writer: a napari Labels layer as a compressed TIFF label map."""

from __future__ import annotations

from typing import Any

import numpy as np

from .io.writers import write_labels_tiff


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save a Labels layer's data to ``path`` (see :func:`~napari_cellist.io.write_labels_tiff`).

    Parameters
    ----------
    path : str
        Target ``.tif`` / ``.tiff`` file.
    data : array-like
        The layer's integer label map (napari axis order).
    meta : dict
        The layer's attributes; its ``scale`` (µm per axis when calibrated) is written as the
        pixel size unless it is all ones.

    Returns
    -------
    list of str
        The file written.
    """
    labels = np.asarray(data)
    scale = meta.get("scale")
    if scale is not None and (len(scale) != labels.ndim or np.allclose(scale, 1.0)):
        scale = None
    return [str(write_labels_tiff(path, labels, scale))]
