"""Snapping AIR's masks to the image at full resolution.

AIR decodes each object's mask as a 16 x 16 glimpse at the working scale (a typical object is
12 px wide there), so at the original resolution its outline is a smooth blob that misses small
or irregular nuclei and the exact edge. :func:`snap_to_image` keeps AIR's objects (which, where,
how many) and redraws each outline from the image: near the decoded mask, the pixels brighter than
an Otsu threshold between the object and its own surroundings.

All steps are vectorised over the objects (one distance transform, one histogram per object via
``bincount``, one connected-component labelling), so the cost grows with the image, not with the
number of objects.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as connected_components

HISTOGRAM_BINS = 64
MIN_KEPT_FRACTION = 0.3  # a redrawn mask smaller than this x the decoded one is not trusted


def snap_to_image(
    labels: np.ndarray,
    signal: np.ndarray,
    diameter: float,
    grow: float = 0.25,
    smooth: float = 0.04,
) -> np.ndarray:
    """Redraw each object's mask from the image near its decoded mask.

    For object ``k`` with decoded mask ``M_k``:

    1. its *reach* is the pixels within ``grow * diameter`` of ``M_k`` that are closer to it than
       to any other object (as ``skimage.segmentation.expand_labels``), its *surroundings* the
       same at twice that distance;
    2. ``t_k`` = Otsu threshold of the smoothed signal over its surroundings (object vs. local
       background);
    3. its new mask = the connected parts of ``reach & signal > t_k`` that touch ``M_k``, with
       holes (dark nucleoli) filled.

    An object whose new mask keeps less than ``MIN_KEPT_FRACTION`` of the decoded area (a dim
    object on bright surroundings) keeps its decoded mask. No object is added or dropped and ids
    are unchanged, so scores indexed by label stay valid.

    Parameters
    ----------
    labels : np.ndarray
        ``(Y, X)`` integer label map, 0 = background, objects 1..N (N = max).
    signal : np.ndarray
        ``(Y, X)`` float image, brighter = object (e.g. normalised intensity minus background).
    diameter : float
        Typical object diameter, pixels of ``labels``.
    grow : float
        How far a mask may grow beyond the decoded one, in object diameters.
    smooth : float
        Gaussian smoothing of ``signal`` before thresholding, sigma in object diameters (at
        least 1 px): pixel noise would otherwise fray the outlines.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` int32 label map with the same ids.
    """
    if labels.shape != signal.shape:
        raise ValueError(f"labels {labels.shape} and signal {signal.shape} differ in shape.")
    labels = np.asarray(labels, np.int32)
    n = int(labels.max(initial=0))
    if n == 0:
        return labels.copy()
    reach_px = max(1.0, grow * diameter)
    sig = ndi.gaussian_filter(np.asarray(signal, np.float32), max(1.0, smooth * diameter))
    # Nearest object of every pixel and its distance (what expand_labels does, done once).
    nearest_index = np.empty((2, *labels.shape), np.int32)  # half the memory of the default
    distance = ndi.distance_transform_edt(labels == 0, return_indices=True, indices=nearest_index)
    nearest = labels[nearest_index[0], nearest_index[1]]
    reach = np.where(distance <= reach_px, nearest, 0)
    surroundings = np.where(distance <= 2.0 * reach_px, nearest, 0)
    threshold = _otsu_per_label(sig, surroundings, n)
    redrawn = np.where(sig > threshold[reach], reach, 0).astype(np.int32)
    redrawn = _keep_parts_touching(redrawn, labels)
    holes = ndi.binary_fill_holes(redrawn > 0) & (redrawn == 0)
    redrawn[holes] = reach[holes]  # a hole inside an object belongs to it
    decoded_area = np.bincount(labels.ravel(), minlength=n + 1)
    new_area = np.bincount(redrawn.ravel(), minlength=n + 1)
    distrusted = new_area < MIN_KEPT_FRACTION * decoded_area
    distrusted[0] = False
    if distrusted.any():
        redrawn[distrusted[redrawn]] = 0
        restore = distrusted[labels]
        redrawn[restore] = labels[restore]
    return redrawn


def _otsu_per_label(values: np.ndarray, regions: np.ndarray, n: int) -> np.ndarray:
    """Otsu threshold of ``values`` within each region 1..n of ``regions``; index 0 = +inf.

    Histograms of ``HISTOGRAM_BINS`` bins spanning each region's own range, all in one
    ``bincount``. A region of a single value gets that value (nothing is above it).
    """
    inside = regions > 0
    ids, vals = regions[inside], values[inside].astype(np.float64)
    low, high = np.full(n + 1, np.inf), np.full(n + 1, -np.inf)
    np.minimum.at(low, ids, vals)  # unbuffered per-label min / max (fast in numpy >= 2)
    np.maximum.at(high, ids, vals)
    empty = ~np.isfinite(low)  # a label with no pixel (ids need not be consecutive)
    low[empty], high[empty] = 0.0, 0.0
    span = np.where(high > low, high - low, 1.0)
    bins = np.clip(
        ((vals - low[ids]) / span[ids] * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1
    )
    hist = np.bincount(ids * HISTOGRAM_BINS + bins, minlength=(n + 1) * HISTOGRAM_BINS)
    hist = hist.reshape(n + 1, HISTOGRAM_BINS).astype(np.float64)
    centres = (np.arange(HISTOGRAM_BINS) + 0.5) / HISTOGRAM_BINS  # in units of each range
    weight_below = np.cumsum(hist, axis=1)
    total = weight_below[:, -1:]
    mass_below = np.cumsum(hist * centres, axis=1)
    weight_above = total - weight_below
    mean_below = mass_below / np.maximum(weight_below, 1e-12)
    mean_above = (mass_below[:, -1:] - mass_below) / np.maximum(weight_above, 1e-12)
    between = weight_below * weight_above * (mean_below - mean_above) ** 2
    best = np.argmax(between[:, :-1], axis=1)  # threshold after bin `best`
    threshold = low + (best + 1) / HISTOGRAM_BINS * span
    threshold[high <= low] = high[high <= low]
    threshold[0] = np.inf
    return threshold


def _keep_parts_touching(redrawn: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Drop the connected parts of each object in ``redrawn`` that do not overlap its decoded
    mask (a neighbouring unclaimed blob inside its reach is not the object)."""
    parts = connected_components(redrawn, background=0, connectivity=1)  # equal ids connect
    touching = np.zeros(int(parts.max()) + 1, bool)
    touching[parts[(redrawn > 0) & (redrawn == decoded)]] = True
    touching[0] = False
    return np.where(touching[parts], redrawn, 0).astype(np.int32)
