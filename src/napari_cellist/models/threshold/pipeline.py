"""The threshold pipeline: smoothing, a global level, local refinement, watershed splitting.

Works on 2D ``(Y, X)`` and 3D ``(Z, Y, X)`` grey images of any real dtype; all lengths are in
pixels. The object diameter drives the smoothing, the size limits and the watershed seed
spacing; when it is not given it is estimated from the image
(:func:`napari_cellist.diameters.diameter_from_image`).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, measure, segmentation
from skimage.feature import peak_local_max

from ...diameters import diameter_from_image
from ...geometry import dilate, distance_to_background, fill_holes, gaussian
from ...images import is_constant
from .params import METHODS, SCALES, ThresholdParams

logger = logging.getLogger(__name__)


def _threshold_level(image: np.ndarray, method: str, level: float | None) -> float:
    if method == "manual":
        if level is None:
            raise ValueError("Method 'manual' needs a threshold level; set 'level' or pick Otsu.")
        return float(level)
    if method not in METHODS:
        raise ValueError(
            f"Unknown threshold method {method!r}; choose one of {', '.join(METHODS)}."
        )
    # Clip the brightest 0.2 % so that a few saturated artefacts do not drag the level up.
    top = np.percentile(image, 99.8)
    clipped = np.minimum(image, top)
    return float(getattr(filters, f"threshold_{method}")(clipped))


def foreground_mask(image: np.ndarray, params: ThresholdParams, diameter: float) -> np.ndarray:
    """Binary foreground of a grey image (2D or 3D) after smoothing and background removal."""
    signed = -image if params.invert else image
    radius = params.background_radius
    sigma = params.smoothing if params.smoothing is not None else diameter / 25.0
    smooth = gaussian(signed, sigma)
    # without background removal the smoothed image is the one thresholded: smooth it once
    work = gaussian(signed - estimate_background(signed, radius), sigma) if radius else smooth
    if params.method != "manual":
        work = rescale_intensity(work, params.intensity_scale)
    mask = work > _threshold_level(work, params.method, params.level)
    if params.local_refine and params.method != "manual":
        mask = refine_locally(smooth, mask, diameter)
    if params.fill_holes:
        mask = fill_holes(mask)
    return mask


def rescale_intensity(image: np.ndarray, scale: str) -> np.ndarray:
    """Intensities above the 1st percentile on a square-root, log or linear scale.

    A square root stabilises photon (Poisson) noise; a log compresses very bright objects so a
    global level also finds dim ones. Only the order of values matters to the level search.
    """
    if scale not in SCALES:
        raise ValueError(f"Unknown intensity scale {scale!r}; choose one of {', '.join(SCALES)}.")
    if scale == "linear":
        return image
    low, high = np.percentile(image, [1.0, 99.9])
    shifted = np.subtract(image, low, dtype=np.result_type(image.dtype, np.float32))
    np.maximum(shifted, 0, out=shifted)  # in place: two fewer image-sized temporaries
    if scale == "sqrt":
        return np.sqrt(shifted, out=shifted)
    shifted *= 1000.0 / (high - low) if high > low else 1.0
    return np.log1p(shifted, out=shifted)


def refine_locally(image: np.ndarray, mask: np.ndarray, diameter: float) -> np.ndarray:
    """Re-threshold each foreground component with Otsu's level of its own neighbourhood.

    A global level is a compromise between dim and bright objects; around each candidate object
    (grown by half a diameter) the local level separates that object from its own background.
    """
    grow = max(2, int(round(diameter / 2)))
    labels = measure.label(mask)
    refined = np.zeros_like(mask)
    for slc in ndi.find_objects(labels):
        window = tuple(slice(max(0, s.start - grow), s.stop + grow) for s in slc)
        values = image[window]
        if np.ptp(values) == 0:
            continue
        local = values > filters.threshold_otsu(values)
        refined[window] |= local
    return refined & dilate(mask, grow)


def estimate_background(image: np.ndarray, radius: float) -> np.ndarray:
    """Smooth background under the objects: a grey opening larger than the objects.

    Like ImageJ's rolling ball, objects narrower than ``2 * radius`` are removed; the opening
    runs on an image downsampled so that the structuring element stays small (fast on 4k images).
    """
    factor = max(1, int(radius // 8))
    small = image[(slice(None, None, factor),) * image.ndim]
    size = max(3, int(round(2 * radius / factor)) | 1)
    opened = ndi.grey_opening(small, size=(size,) * image.ndim)
    opened = ndi.uniform_filter(opened, size=size)
    zoom = [full / part for full, part in zip(image.shape, small.shape, strict=True)]
    return ndi.zoom(opened, zoom, order=1, grid_mode=True, mode="nearest")[
        tuple(slice(0, n) for n in image.shape)
    ]


def split_touching(
    mask: np.ndarray,
    diameter: float,
    seed_spacing: float,
    intensity: np.ndarray | None = None,
    intensity_weight: float = 0.0,
) -> np.ndarray:
    """Instance labels from a binary mask by a distance-transform watershed.

    Seeds are maxima of the smoothed distance transform at least ``seed_spacing * diameter``
    apart; basins are cut at the necks between touching objects. With ``intensity`` and an
    ``intensity_weight`` > 0 the landscape is ``distance * intensity ** weight``, so that cuts also
    follow the dim gaps between bright touching nuclei.
    """
    dist = distance_to_background(mask)
    if intensity is not None and intensity_weight > 0:
        inside = intensity[mask]
        low, high = np.percentile(inside, [1, 99]) if inside.size else (0.0, 1.0)
        relative = np.clip((intensity - low) / max(high - low, 1e-6), 0.05, 1.0)
        dist = dist * relative**intensity_weight
    dist = gaussian(dist.astype(np.float32, copy=False), max(1.0, diameter / 20.0))
    min_distance = max(1, int(round(seed_spacing * diameter)))
    components = measure.label(mask)
    peaks = peak_local_max(dist, min_distance=min_distance, labels=components, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(-dist, markers, mask=mask)
    # components without any seed (tiny or flat) keep their own id
    # (one relabelling pass: a full-image comparison per component grew with their number)
    unseeded = (labels == 0) & mask
    if unseeded.any():
        _, order = np.unique(components[unseeded], return_inverse=True)
        labels[unseeded] = labels.max() + 1 + order.reshape(-1)
    return labels.astype(np.int32)


def _size_filter(labels: np.ndarray, min_area: float, max_area: float | None) -> np.ndarray:
    counts = np.bincount(labels.ravel())
    drop = counts < min_area
    if max_area:
        drop |= counts > max_area
    drop[0] = False
    if drop.any():
        labels = labels.copy()
        labels[drop[labels]] = 0
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)


def expected_area(diameter: float, ndim: int) -> float:
    """Area (2D) or volume (3D) of a disc / ball of ``diameter`` pixels."""
    radius = diameter / 2.0
    return float(np.pi * radius**2) if ndim == 2 else float(4.0 / 3.0 * np.pi * radius**3)


#: 2D images of more pixels have their diameter estimated at half resolution (a quarter of the
#: work, within ~2 % on the real data sets) unless that finds objects under 32 px (smaller ones
#: come out ~5 % too large at half resolution).
COARSE_DIAMETER_PIXELS = 1 << 22


def estimate_diameter(image: np.ndarray, invert: bool = False) -> float:
    """Typical object diameter in pixels (:func:`~napari_cellist.diameters.diameter_from_image`);
    on every second pixel for 2D images over :data:`COARSE_DIAMETER_PIXELS` pixels."""
    if image.ndim == 2 and image.size > COARSE_DIAMETER_PIXELS:
        coarse = 2.0 * diameter_from_image(image[::2, ::2], invert)
        if coarse >= 32.0:
            return coarse
    return diameter_from_image(image, invert)


def segment(image: np.ndarray, params: ThresholdParams) -> tuple[np.ndarray, float]:
    """Label map of a grey image with the threshold pipeline.

    Returns
    -------
    labels : np.ndarray
        int32 label map of ``image.shape``.
    diameter : float
        The diameter used (given or estimated), in pixels.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"Threshold segmentation takes 2D or 3D images, got shape {image.shape}.")
    image = np.asarray(image, np.float32)
    if is_constant(image):
        logger.info("Constant image: no objects.")
        return np.zeros(image.shape, np.int32), float(params.diameter or 0.0)
    diameter = (
        float(params.diameter) if params.diameter else estimate_diameter(image, params.invert)
    )
    mask = foreground_mask(image, params, diameter)
    if params.split_touching:
        labels = split_touching(
            mask,
            diameter,
            params.seed_spacing,
            -image if params.invert else image,
            params.intensity_weight,
        )
    else:
        labels = measure.label(mask).astype(np.int32)
    min_area = (
        params.min_area
        if params.min_area is not None
        else 0.1 * expected_area(diameter, image.ndim)
    )
    return _size_filter(labels, min_area, params.max_area), diameter


def object_scores(
    image: np.ndarray, labels: np.ndarray, boxes: list[tuple[slice, ...] | None] | None = None
) -> dict[int, float]:
    """Contrast of each object against the background, scaled to [0, 1].

    ``(median inside - background median) / (99th percentile - background median)``; a
    confidence proxy for a model that has no probabilities. ``boxes``: the map's
    :func:`scipy.ndimage.find_objects`, when the caller has it.
    """
    # ids and the background from the boxes (np.unique sorted the whole map)
    boxes = ndi.find_objects(labels) if boxes is None else boxes
    ids = np.array([i for i, box in enumerate(boxes, start=1) if box is not None], np.intp)
    if len(ids) == 0:
        return {}
    outside = labels == 0
    background = float(np.median(image[outside])) if outside.any() else float(image.min())
    del outside
    top = float(np.percentile(image, 99))
    # per object on its bounding box (ndi.median sorts the whole image: 2.5 s on 4096^2)
    inside = np.array(
        [float(np.median(image[boxes[i - 1]][labels[boxes[i - 1]] == i])) for i in ids]
    )
    spread = max(top - background, 1e-6)
    return {
        int(i): float(np.clip((v - background) / spread, 0.0, 1.0))
        for i, v in zip(ids, inside, strict=True)
    }
