"""Typical object diameters, in pixels: from annotated label maps, or estimated from an image.

Every model that needs an object size reads it here: the threshold search and AIR measure the
annotations (:func:`diameter_from_labels`); the threshold model, Cellpose and AIR estimate it
from a grey image when none is given (:func:`diameter_from_image`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from skimage import filters, measure

from .geometry import areas, distance_to_background, fill_holes, gaussian, open_mask
from .images import is_constant


def diameter_from_labels(label_maps: Iterable[np.ndarray | None]) -> float | None:
    """Median equivalent diameter (px) of the objects of int label maps, pooled.

    The median object area (pixels / voxels) becomes the diameter of the disc (2D maps) or ball
    (3D maps, judged by the first map) of that area. ``None`` maps are ignored.

    Parameters
    ----------
    label_maps : iterable of np.ndarray or None
        Label maps ``(Y, X)`` or ``(Z, Y, X)``, 0 = background.

    Returns
    -------
    float or None
        The diameter in pixels, ``None`` when the maps hold no object.
    """
    maps = [m for m in label_maps if m is not None]
    sizes = [a for m in maps for a in areas(m).values()]
    if not sizes:
        return None
    median = float(np.median(sizes))
    return 2.0 * np.sqrt(median / np.pi) if maps[0].ndim == 2 else (6.0 * median / np.pi) ** (1 / 3)


def diameter_from_image(image: np.ndarray, invert: bool = False) -> float:
    """Typical object diameter in pixels, estimated from an Otsu foreground of the image.

    Isolated, convex components give the equivalent diameter directly; clumps give twice the
    largest inscribed radius of each component. The area-weighted median over components is
    returned.

    Parameters
    ----------
    image : np.ndarray
        Grey ``(Y, X)`` or ``(Z, Y, X)`` image.
    invert : bool
        Objects are dark.

    Returns
    -------
    float
        Diameter in pixels (at least 4); 4 for a constant image or an empty foreground.
    """
    work = -image if invert else image
    if is_constant(work):
        return 4.0
    small = gaussian(work.astype(np.float32), 1.0)
    mask = open_mask(fill_holes(small > _otsu_level(small)))
    labels = measure.label(mask)
    props = [p for p in measure.regionprops(labels) if p.area >= 16]
    if not props:
        return 4.0
    dist = distance_to_background(mask)
    diameters, weights = [], []
    for prop in props:
        if prop.solidity > 0.9:
            diameters.append(prop.equivalent_diameter_area)
        else:
            diameters.append(2.0 * float(dist[prop.slice][prop.image].max()) * 1.15)
        weights.append(prop.area)
    # Area-weighted median: specks of noise are many but small, objects few but large.
    return max(4.0, _weighted_median(np.asarray(diameters), np.asarray(weights, float)))


def _otsu_level(image: np.ndarray) -> float:
    """Otsu's level of the image with its brightest 0.2 % clipped (saturated artefacts)."""
    top = np.percentile(image, 99.8)
    return float(filters.threshold_otsu(np.minimum(image, top)))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])
