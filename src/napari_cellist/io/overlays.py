"""Overlay pictures for reports: the image in grey with coloured object outlines and points.

Needs no plotting library: the picture is composed as an RGB array (the object count is drawn
with a built-in 3x5 pixel font) and written as PNG by :mod:`imageio`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..images import normalise_percentile
from .readers import as_label_map
from .writers import atomic_write_bytes

logger = logging.getLogger(__name__)

POINT_COLOUR = (255, 255, 0)
#: 3x5 glyphs, rows top to bottom, "#" = ink.
_FONT = {
    "0": "###|#.#|#.#|#.#|###",
    "1": ".#.|##.|.#.|.#.|###",
    "2": "###|..#|###|#..|###",
    "3": "###|..#|###|..#|###",
    "4": "#.#|#.#|###|..#|..#",
    "5": "###|#..|###|..#|###",
    "6": "###|#..|###|#.#|###",
    "7": "###|..#|..#|..#|..#",
    "8": "###|#.#|###|#.#|###",
    "9": "###|#.#|###|..#|###",
    "n": "...|##.|#.#|#.#|#.#",
    "=": "...|###|...|###|...",
}


def save_overlay_png(
    path: str | os.PathLike,
    image: np.ndarray,
    labels: np.ndarray,
    points: np.ndarray | None = None,
    *,
    show_count: bool = True,
    low: float = 1.0,
    high: float = 99.8,
) -> Path:
    """Save the image with object outlines (and points) as an RGB PNG, atomically.

    Parameters
    ----------
    path : str or path-like
        Target ``.png``.
    image : np.ndarray
        Grey ``(Y, X)`` / ``(Z, Y, X)`` or colour ``(Y, X, 3|4)`` image (colours are averaged).
    labels : np.ndarray
        Label map of the image's spatial shape. 3D images and labels are shown as maximum
        projections along Z (where objects overlap along Z, the highest id wins).
    points : np.ndarray, optional
        ``(N, 2)`` ``(row, col)`` or ``(N, 3)`` ``(plane, row, col)`` pixel coordinates, drawn as
        yellow dots.
    show_count : bool
        Write ``n=<number of objects>`` in the top-left corner.
    low, high : float
        Percentiles of the image mapped to black and white.

    Returns
    -------
    Path
        The file written.
    """
    import imageio.v3 as iio

    grey, labels = _project(np.asarray(image), as_label_map(labels))
    canvas = _grey_rgb(grey, low, high)
    _draw_outlines(canvas, labels)
    if points is not None and len(points):
        _draw_points(canvas, np.asarray(points, float)[:, -2:])
    if show_count:
        n_objects = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
        _draw_text(canvas, f"n={n_objects}")
    return atomic_write_bytes(path, iio.imwrite("<bytes>", canvas, extension=".png"))


def _project(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if image.ndim == labels.ndim + 1 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(axis=-1)
    if image.shape != labels.shape:
        raise ValueError(
            f"The image {image.shape} and the label map {labels.shape} differ in shape."
        )
    if labels.ndim == 3:
        image, labels = image.max(axis=0), labels.max(axis=0)
    if labels.ndim != 2:
        raise ValueError(f"Overlays need a 2D or 3D image, got shape {image.shape}.")
    return image, labels


def _grey_rgb(grey: np.ndarray, low: float, high: float) -> np.ndarray:
    norm = np.clip(normalise_percentile(grey.astype(np.float32), low, high), 0.0, 1.0)
    return np.repeat((norm * 255).astype(np.uint8)[..., None], 3, axis=-1)


def _palette(ids: np.ndarray) -> np.ndarray:
    """uint8 ``(N, 3)`` bright colours, distinct for consecutive ids (golden-ratio hues)."""
    from skimage.color import hsv2rgb

    hsv = np.stack([(ids * 0.618034) % 1.0, np.full(len(ids), 0.85), np.ones(len(ids))], -1)
    return (hsv2rgb(hsv) * 255).astype(np.uint8)


def _draw_outlines(canvas: np.ndarray, labels: np.ndarray) -> None:
    from skimage.segmentation import find_boundaries

    edge = find_boundaries(labels, mode="inner") & (labels > 0)
    canvas[edge] = _palette(labels[edge])


def _draw_points(canvas: np.ndarray, points: np.ndarray) -> None:
    from skimage.draw import disk

    radius = max(1.5, min(canvas.shape[:2]) / 256)
    for row, col in points:
        rr, cc = disk((row, col), radius, shape=canvas.shape[:2])
        canvas[rr, cc] = POINT_COLOUR


def _draw_text(canvas: np.ndarray, text: str) -> None:
    """White text on black in the top-left corner, scaled with the image size."""
    size = max(1, min(canvas.shape[:2]) // 128)
    glyphs = [np.array([[c == "#" for c in row] for row in _FONT[ch].split("|")]) for ch in text]
    spaced = [np.pad(g, ((0, 0), (0, 1))) for g in glyphs]
    bitmap = np.pad(np.hstack(spaced), 1)
    bitmap = np.kron(bitmap, np.ones((size, size), bool))
    height = min(bitmap.shape[0], canvas.shape[0])
    width = min(bitmap.shape[1], canvas.shape[1])
    box = canvas[:height, :width]
    box[:] = 0
    box[bitmap[:height, :width]] = 255
