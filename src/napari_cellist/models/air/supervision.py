"""From user images and annotations to AIR's working scale and per-cell targets.

AIR works at a *working scale* where a typical object is ``Geometry.diameter`` pixels wide: an
image with 112 px nuclei is shrunk ~9x, one with 12 px nuclei is kept. Annotations become
per-slot targets (presence, box in ``tanh`` units of ``z_where``, mask inside the render window):

* an instance mask makes its image *fully annotated*: slots holding an object's centre are
  present (with box and mask targets), every other slot is known to be empty;
* points give presence and position only; slots without a point stay unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from skimage import measure

from ...images import normalise_percentile, prepare_grey
from .modules import OFFSET_RANGE, SIZE_RANGE, WHERE_DIM, Geometry

TANH_CLIP = 0.95  # targets stay inside the open range of tanh
BACKGROUND_PERCENTILE = 10.0
BACKGROUND_BLOCK = 4.0  # background blocks, in object diameters


@dataclass(frozen=True)
class WorkingImage:
    """An image at the working scale, normalised, padded to whole cells.

    ``image``/``background`` are float32 ``(H, W)`` (padding included); ``shape`` is the unpadded
    working shape and ``scale`` the working / original size ratio per axis ``(sy, sx)``.
    """

    image: np.ndarray
    background: np.ndarray
    shape: tuple[int, int]
    scale: tuple[float, float]


@dataclass(frozen=True)
class CellTargets:
    """Per-slot targets ``(Hc, Wc, S, ...)`` of one working image (see :class:`model.Batch`)."""

    pres_target: np.ndarray
    pres_known: np.ndarray
    where_target: np.ndarray
    where_known: np.ndarray
    mask_target: np.ndarray  # uint8 (Hc, Wc, S, Wn, Wn)
    mask_known: np.ndarray


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear (anti-aliased when shrinking) resize of a float ``(H, W)`` image."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    shrink = shape[0] < image.shape[0] or shape[1] < image.shape[1]
    out = F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False, antialias=shrink)
    return out[0, 0].numpy()


def to_working(image: np.ndarray, diameter: float, geom: Geometry) -> WorkingImage:
    """Rescale so that ``diameter`` becomes ``geom.diameter``, normalise, estimate background.

    Parameters
    ----------
    image : np.ndarray
        Grey ``(Y, X)`` image, any real dtype; NaN/inf are replaced (see ``prepare_grey``).
    diameter : float
        Typical object diameter in the image, pixels (> 0).
    """
    if diameter <= 0 or not math.isfinite(diameter):
        raise ValueError(
            f"The object diameter must be a positive number of pixels, got {diameter}."
        )
    grey = prepare_grey(image)
    if grey.ndim != 2:
        raise ValueError(f"AIR segments 2D (Y, X) images; got shape {grey.shape}.")
    factor = geom.diameter / diameter
    shape = (
        max(geom.cell, round(grey.shape[0] * factor)),
        max(geom.cell, round(grey.shape[1] * factor)),
    )
    work = compress_intensity(normalise_percentile(resize(grey, shape), 1.0, 99.8), geom)
    work = np.clip(work, -0.5, 2.0)  # saturated / hot pixels stay in a float32-safe range
    padded = _pad_to_cells(work, geom.cell, value=float(np.percentile(work, 1.0)))
    background = estimate_background(padded, geom)
    scale = (shape[0] / grey.shape[0], shape[1] / grey.shape[1])
    return WorkingImage(padded, background, shape, scale)


def compress_intensity(image: np.ndarray, geom: Geometry) -> np.ndarray:
    """Map percentile-normalised intensities (1st..99.8th percentile = 0..1) to the working scale.

    ``geom.intensity == "sqrt"``: ``(sqrt(x + c) - sqrt(c)) / (sqrt(1 + c) - sqrt(c))`` with
    ``c = geom.sqrt_offset`` and ``x`` clipped at 0, so 0 and 1 stay put, the contrast of dim
    objects grows (slope ``~1 / (2 sqrt(c))`` near 0 in these units) and that of the brightest
    shrinks. Fluorescence is shot-noise limited, its variance growing with the intensity; a square
    root (Anscombe's transform) makes the noise closer to the constant-variance Normal of the
    likelihood. The offset keeps the slope finite, so background noise is not blown up.
    ``"linear"`` returns the image unchanged.
    """
    if geom.intensity == "linear":
        return image
    root_c, span = _sqrt_scale(geom)
    return ((np.sqrt(np.clip(image, 0.0, None) + geom.sqrt_offset) - root_c) / span).astype(
        np.float32
    )


def expand_intensity(image: np.ndarray, geom: Geometry) -> np.ndarray:
    """Inverse of :func:`compress_intensity` (for values it can produce, i.e. ``>= 0``)."""
    if geom.intensity == "linear":
        return image
    root_c, span = _sqrt_scale(geom)
    return (np.square(np.clip(image, 0.0, None) * span + root_c) - geom.sqrt_offset).astype(
        np.float32
    )


def _sqrt_scale(geom: Geometry) -> tuple[float, float]:
    """``sqrt(c)`` and ``sqrt(1 + c) - sqrt(c)`` of the "sqrt" scale, ``c = geom.sqrt_offset``."""
    root_c = math.sqrt(geom.sqrt_offset)
    return root_c, math.sqrt(1.0 + geom.sqrt_offset) - root_c


def _pad_to_cells(image: np.ndarray, cell: int, value: float) -> np.ndarray:
    pad = [(0, (-n) % cell) for n in image.shape]
    return np.pad(image, pad, constant_values=value)


def estimate_background(image: np.ndarray, geom: Geometry) -> np.ndarray:
    """Smooth background: a low percentile in blocks of a few object diameters, interpolated."""
    block = max(2, int(round(BACKGROUND_BLOCK * geom.diameter)))
    h, w = image.shape
    nby, nbx = max(1, round(h / block)), max(1, round(w / block))
    coarse = np.zeros((nby, nbx), np.float32)
    # np.array_split's blocks: the first (n % k) are one pixel longer. Blocks of equal shape are
    # reshaped side by side, so each group of them takes a single percentile call.
    for rows, (y0, y1), bh in _split_groups(h, nby):
        for cols, (x0, x1), bw in _split_groups(w, nbx):
            blocks = image[y0:y1, x0:x1].reshape(
                rows.stop - rows.start, bh, cols.stop - cols.start, bw
            )
            coarse[rows, cols] = np.percentile(blocks, BACKGROUND_PERCENTILE, axis=(1, 3))
    return resize(coarse, (h, w)) if coarse.size > 1 else np.full((h, w), coarse.item(), np.float32)


def _split_groups(n: int, k: int) -> list[tuple[slice, tuple[int, int], int]]:
    """``np.array_split(range(n), k)`` as groups of equal blocks: (block indices, pixel range,
    block length) for the ``n % k`` longer blocks, then for the others (empty groups left out)."""
    size, longer = divmod(n, k)
    groups = [
        (slice(0, longer), (0, longer * (size + 1)), size + 1),
        (slice(longer, k), (longer * (size + 1), n), size),
    ]
    return [g for g in groups if g[0].stop > g[0].start and g[2] > 0]


def labels_to_working(labels: np.ndarray, work: WorkingImage) -> np.ndarray:
    """Nearest-neighbour resize of a label map to the (padded) working image."""
    h, w = work.shape
    rows = np.minimum(((np.arange(h) + 0.5) / work.scale[0]).astype(np.int64), labels.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) / work.scale[1]).astype(np.int64), labels.shape[1] - 1)
    out = np.zeros(work.image.shape, np.int32)
    out[:h, :w] = labels[np.ix_(rows, cols)]
    return out


def cell_targets(
    work: WorkingImage,
    geom: Geometry,
    labels: np.ndarray | None = None,
    points: np.ndarray | None = None,
) -> CellTargets:
    """Per-slot targets from an instance label map and / or points (original pixel coordinates)."""
    hc, wc = work.image.shape[0] // geom.cell, work.image.shape[1] // geom.cell
    s, wn = geom.slots, geom.window
    t = CellTargets(
        np.zeros((hc, wc, s), np.float32),
        np.zeros((hc, wc, s), bool),
        np.zeros((hc, wc, s, WHERE_DIM), np.float32),
        np.zeros((hc, wc, s, WHERE_DIM), bool),
        np.zeros((hc, wc, s, wn, wn), np.uint8),
        np.zeros((hc, wc, s), bool),
    )
    if labels is not None:
        _add_mask_targets(t, labels_to_working(labels, work), geom)
    if points is not None and len(points):
        _add_point_targets(t, np.asarray(points, float)[:, -2:] * np.asarray(work.scale), geom)
    return t


def _where_tanh(cy: float, cx: float, i: int, j: int, geom: Geometry) -> tuple[float, float]:
    ty = (cy - (i + 0.5) * geom.cell) / (OFFSET_RANGE * geom.cell)
    tx = (cx - (j + 0.5) * geom.cell) / (OFFSET_RANGE * geom.cell)
    return float(np.clip(ty, -TANH_CLIP, TANH_CLIP)), float(np.clip(tx, -TANH_CLIP, TANH_CLIP))


def ellipse_box(coords: np.ndarray, angle_range: float = math.pi / 4) -> tuple[float, float, float]:
    """Height, width (pixels) and angle (radians, within +-``angle_range``) of an object's box.

    ``coords`` ``(P, 2)`` are its pixels (row, col). The box is the object's ellipse of equal second
    moments (full axis lengths, at least 1 px), turned as in :func:`.modules.where_to_box`: its
    height axis along ``(cos a, -sin a)``. An ellipse turned by more than 45 degrees is described
    the other way round (height and width swapped), so the angle stays within +-45 degrees. With
    ``angle_range`` 0 (upright boxes) the box is the bounding box.
    """
    if angle_range <= 0:
        extent = coords.max(axis=0) - coords.min(axis=0) + 1
        return float(extent[0]), float(extent[1]), 0.0
    centred = coords - coords.mean(axis=0)
    cov = centred.T @ centred / len(coords) + np.eye(2) / 12.0  # + a pixel's own spread
    eigvals, eigvecs = np.linalg.eigh(cov)  # ascending
    minor, major = (4.0 * math.sqrt(v) for v in eigvals)
    vy, vx = eigvecs[:, 1]  # major axis, (row, col)
    angle = math.atan2(-vx, vy)  # in (-pi, pi]; an axis has no sign, so fold into (-pi/2, pi/2]
    if angle > math.pi / 2:
        angle -= math.pi
    elif angle <= -math.pi / 2:
        angle += math.pi
    if abs(angle) > math.pi / 4:
        major, minor, angle = minor, major, angle - math.copysign(math.pi / 2, angle)
    return major, minor, float(np.clip(angle, -angle_range, angle_range))


def _add_mask_targets(t: CellTargets, labels: np.ndarray, geom: Geometry) -> None:
    hc, wc = t.pres_target.shape[:2]
    t.pres_known[:] = True  # a mask annotates the whole image: no centre = no object
    pad = (geom.window - geom.cell) // 2
    padded = np.pad(labels, pad)
    filled = np.zeros((hc, wc), np.int64)
    props = sorted(measure.regionprops(labels), key=lambda p: -p.area)
    for prop in props:
        cy, cx = prop.centroid[0] + 0.5, prop.centroid[1] + 0.5  # pixel centres -> continuous
        i, j = min(int(cy // geom.cell), hc - 1), min(int(cx // geom.cell), wc - 1)
        slot = filled[i, j]
        if slot >= geom.slots:
            continue  # more objects than slots in this cell: the extra ones are not supervised
        filled[i, j] += 1
        bh, bw, angle = ellipse_box(prop.coords, geom.angle_range)
        size = math.log(math.sqrt(bh * bw) / geom.diameter) / SIZE_RANGE
        aspect = math.log(bh / bw) / geom.aspect_range
        turn = angle / geom.angle_range if geom.angle_range > 0 else 0.0
        ty, tx = _where_tanh(cy, cx, i, j, geom)
        t.pres_target[i, j, slot] = 1.0
        t.where_target[i, j, slot] = (ty, tx, *np.clip((size, aspect, turn), -TANH_CLIP, TANH_CLIP))
        t.where_known[i, j, slot] = (True, True, True, True, geom.angle_range > 0)
        window = padded[
            i * geom.cell : i * geom.cell + geom.window, j * geom.cell : j * geom.cell + geom.window
        ]
        t.mask_target[i, j, slot] = window == prop.label
        t.mask_known[i, j, slot] = True


def _add_point_targets(t: CellTargets, points: np.ndarray, geom: Geometry) -> None:
    hc, wc = t.pres_target.shape[:2]
    for cy, cx in points:
        i, j = int(cy // geom.cell), int(cx // geom.cell)
        if not (0 <= i < hc and 0 <= j < wc) or t.where_known[i, j, :, 0].all():
            continue  # outside the image, or the cell's slots are already supervised
        slot = int(np.argmin(t.where_known[i, j, :, 0]))
        t.pres_target[i, j, slot] = 1.0
        t.pres_known[i, j, slot] = True
        t.where_target[i, j, slot, :2] = _where_tanh(cy, cx, i, j, geom)
        t.where_known[i, j, slot, :2] = True
