"""Turning microscopy images into the uint8 RGB images Segment Anything was trained on."""

from __future__ import annotations

import numpy as np

from ...images import normalise_percentile


def to_uint8_rgb(image: np.ndarray, rgb: bool = False) -> np.ndarray:
    """uint8 ``(Y, X, 3)`` version of a 2D grey or colour image.

    Parameters
    ----------
    image : np.ndarray
        ``(Y, X)`` grey (any real dtype: 8/16-bit, float) or, when ``rgb``, ``(Y, X, 3|4)``
        colour (alpha is dropped).
    rgb : bool
        The last axis holds colours (napari's ``Image.rgb``).

    Returns
    -------
    np.ndarray
        C-contiguous uint8 ``(Y, X, 3)``. uint8 input is kept as is; other dtypes are scaled so
        that their 1st..99.8th percentiles span 0..255 (jointly over the colour channels).

    Raises
    ------
    ValueError
        Wrong number of dimensions or a non-numeric image.
    """
    array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"SAM needs a numeric image, got dtype {array.dtype}.")
    if rgb:
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise ValueError(f"An RGB(A) image is (Y, X, 3|4), got shape {array.shape}.")
        array = array[..., :3]
    elif array.ndim != 2:
        raise ValueError(
            f"SAM segments 2D images (Y, X), got shape {array.shape}; pass a single plane "
            "(3D stacks are segmented slice by slice) or set rgb=True for colour images."
        )
    if array.dtype != np.uint8:
        finite = np.where(
            np.isfinite(array), array, np.nanmin(array) if np.isfinite(array).any() else 0
        )
        scaled = normalise_percentile(finite.astype(np.float32))
        array = np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.ascontiguousarray(array)
