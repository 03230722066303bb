"""Validation and conversion of user images into what models take.

Models take a *grey spatial* image: ``(Y, X)`` or ``(Z, Y, X)``, finite values, any real dtype.
Users have RGB(A) images, multi-channel stacks, 16-bit and float data, NaNs and constant images;
:func:`prepare_grey` turns each into a grey spatial float32 image or raises a ``ValueError`` that
says what to do.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

MAX_PIXELS = 2**31 - 1  # int32 label maps and pycocotools RLE index with 32-bit integers


def prepare_grey(
    image: np.ndarray,
    *,
    rgb: bool = False,
    channel: int | None = None,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Return a finite, grey, spatial float32 view of ``image``.

    Parameters
    ----------
    image : np.ndarray
        ``(Y, X)``, ``(Z, Y, X)``, ``(Y, X, 3|4)`` when ``rgb``, or any of those with a channel
        axis given by ``channel_axis``.
    rgb : bool
        The last axis holds RGB(A) colours (napari's ``Image.rgb``).
    channel : int, optional
        Channel to segment (for RGB or ``channel_axis`` images). ``None`` averages the colour
        channels (RGB) and is an error for other multi-channel images.
    channel_axis : int, optional
        Axis of ``image`` that holds channels (e.g. 0 for ``(C, Y, X)``).

    Returns
    -------
    np.ndarray
        float32 array ``(Y, X)`` or ``(Z, Y, X)``; NaN/inf replaced by the finite minimum.

    Raises
    ------
    ValueError
        Empty, non-numeric, wrong-dimensional or all-NaN input, or a channel that does not exist.
    """
    array = np.asarray(image)
    if array.size == 0:
        raise ValueError("The image is empty (it has no pixels).")
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"Cannot segment an image of dtype {array.dtype}; a numeric image is needed."
        )
    if rgb:
        array = _pick_channel(array, channel, axis=-1, colour=True)
    elif channel_axis is not None:
        array = _pick_channel(array, channel, axis=channel_axis, colour=False)
    array = np.squeeze(array) if array.ndim > 3 else array
    if array.ndim not in (2, 3):
        raise ValueError(
            f"The image has {array.ndim} dimensions {array.shape}; models take 2D (Y, X) or 3D "
            "(Z, Y, X) images. Pick one time point / channel first (in napari, move the slider "
            "and use 'Image > Duplicate current slice', or give a channel)."
        )
    if array.size > MAX_PIXELS:
        raise ValueError(
            f"The image has {array.size} pixels, more than {MAX_PIXELS}; crop or tile it first."
        )
    return _finite_float32(array)


def _pick_channel(array: np.ndarray, channel: int | None, *, axis: int, colour: bool) -> np.ndarray:
    n_channels = array.shape[axis]
    if channel is None:
        if colour:
            return array[..., :3].mean(axis=-1) if n_channels >= 3 else array.mean(axis=-1)
        raise ValueError(
            f"The image has {n_channels} channels on axis {axis}; choose the channel to segment."
        )
    if not -n_channels <= channel < n_channels:
        raise ValueError(
            f"Channel {channel} does not exist: the image has channels 0..{n_channels - 1}."
        )
    return np.take(array, channel, axis=axis)


def _finite_float32(array: np.ndarray) -> np.ndarray:
    out = array.astype(np.float32, copy=True)
    finite = np.isfinite(out)
    if not finite.all():
        if not finite.any():
            raise ValueError("The image holds no finite values (all NaN or infinite).")
        n_bad = int((~finite).sum())
        logger.warning("Replacing %d NaN/infinite pixels by the image minimum.", n_bad)
        out[~finite] = out[finite].min()
    return out


def normalise_percentile(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Scale ``image`` so that its ``low``..``high`` percentiles map to 0..1 (float32, unclipped).

    A constant image maps to zeros.
    """
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        hi = float(image.max())
        lo = float(image.min())
    if hi <= lo:
        return np.zeros(image.shape, np.float32)
    return ((image - lo) / (hi - lo)).astype(np.float32)


def is_constant(image: np.ndarray) -> bool:
    """True when every pixel has the same value."""
    return bool(image.size == 0 or np.ptp(image) == 0)


def display_range(
    image: np.ndarray, low: float = 1.0, high: float = 99.8, max_samples: int = 2**20
) -> tuple[float, float]:
    """Contrast limits ``(lo, hi)`` from the ``low``/``high`` percentiles of ``image``.

    A uint16 image whose objects use a few hundred of its 65,536 grey levels shows near black
    with min/max (or dtype) limits; percentiles show its content. Large images (memory-mapped
    ones included) are sampled on a regular grid of at most ``max_samples`` pixels, so this
    reads a few MB whatever the image size.

    Parameters
    ----------
    image : np.ndarray
        Grey image of any shape and real dtype; NaN / inf are ignored.
    low, high : float
        Percentiles (0-100).
    max_samples : int
        Most pixels read.

    Returns
    -------
    tuple of float
        ``lo < hi`` (``(v, v + 1)`` for a constant image, ``(0, 1)`` without finite values).
    """
    array = np.asarray(image) if not hasattr(image, "shape") else image
    if array.size == 0:
        return 0.0, 1.0
    step = max(1, int(np.ceil((array.size / max_samples) ** (1 / max(array.ndim, 1)))))
    sample = np.asarray(array[(slice(None, None, step),) * array.ndim], dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [low, high]))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)
