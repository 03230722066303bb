"""Robust background flattening: uneven illumination removed, bright artefacts kept in range.

NIH3T3 images (Coelho 2009) have a background that varies across the field and a few bright,
saturated artefacts. :func:`flatten_background` estimates the large-scale background with a low
percentile in windows of several object diameters (bright spots, smaller than the window and
above the percentile, do not pull it up), subtracts it, and maps the 1st..99.8th percentiles of
the result to 0..1 (brighter artefacts are clipped at ``clip``), the same for every image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .images import prepare_grey

BACKGROUND_PERCENTILE = 10.0
WINDOW_DIAMETERS = 4.0


def estimate_background(image: np.ndarray, diameter: float) -> np.ndarray:
    """Large-scale background of a grey ``(Y, X)`` image, float32 of the same shape.

    A ``BACKGROUND_PERCENTILE`` percentile filter over windows of ``WINDOW_DIAMETERS`` object
    diameters, computed on an image downsampled to ~8 pixels per diameter, smoothed and
    interpolated back.

    Parameters
    ----------
    image : np.ndarray
        Grey ``(Y, X)`` image (float).
    diameter : float
        Typical object diameter in pixels (> 0).
    """
    if not diameter > 0:
        raise ValueError(
            f"The object diameter must be a positive number of pixels, not {diameter}."
        )
    factor = max(1, int(diameter // 8))
    small = np.asarray(image, np.float32)[::factor, ::factor]
    size = max(3, int(round(WINDOW_DIAMETERS * diameter / factor)) | 1)
    low = ndi.percentile_filter(small, BACKGROUND_PERCENTILE, size=size, mode="reflect")
    low = ndi.uniform_filter(low, size=size, mode="reflect")
    zoom = [full / part for full, part in zip(image.shape, small.shape, strict=True)]
    back = ndi.zoom(low, zoom, order=1, grid_mode=True, mode="nearest")
    return back[: image.shape[0], : image.shape[1]].astype(np.float32)


def flatten_background(
    image: np.ndarray, diameter: float | None = None, clip: float = 1.5
) -> np.ndarray:
    """The image minus its background, normalised (1st..99.8th percentile -> 0..1).

    Parameters
    ----------
    image : np.ndarray
        Grey ``(Y, X)`` image, any real dtype.
    diameter : float, optional
        Typical object diameter in pixels; None = estimated from the image.
    clip : float
        Values above this (in the normalised units) are clipped: bright saturated artefacts stay
        within ``clip`` times the range of the nuclei.

    Returns
    -------
    np.ndarray
        float32 ``(Y, X)``, background near 0, nuclei around 0..1.
    """
    grey = prepare_grey(image).astype(np.float32)
    if grey.ndim != 2:
        raise ValueError(f"Background flattening takes 2D (Y, X) images, got shape {grey.shape}.")
    if diameter is None:
        from .diameters import diameter_from_image

        diameter = diameter_from_image(grey)
    flat = grey - estimate_background(grey, float(diameter))
    low, high = np.percentile(flat, [1.0, 99.8])
    scaled = (flat - low) / max(float(high - low), 1e-6)
    return np.clip(scaled, -0.5, clip).astype(np.float32)
