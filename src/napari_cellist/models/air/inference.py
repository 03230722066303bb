"""Prediction with a trained AIR network: one amortised encoder pass (tiled for large images), then
objects decoded from the present slots and drawn at the image's own resolution.

The label map comes from the decoded alpha masks inside each object's box: a pixel belongs to the
object with the highest ``presence * alpha`` among those whose alpha exceeds a threshold. Objects
that keep too little of their own mask after this (duplicates of a neighbour) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ...borders import crop_border
from ...images import normalise_percentile
from .generative import AirNet, CellCodes
from .modules import (
    WHERE_DIM,
    Geometry,
    cell_centres,
    glimpses_in_boxes,
    place_glimpses,
    where_to_box,
)
from .supervision import WorkingImage, expand_intensity, resize

# Objects with less of their mask inside a mirrored image are mirror images (see label_map).
MIN_INSIDE_FRACTION = 0.25


@dataclass(frozen=True)
class Objects:
    """Present objects (``K`` of the ``N`` slots of a working image).

    ``scores`` ``(K,)`` presence probabilities; ``boxes`` ``(K, 5)`` = (cy, cx, h, w, angle) in
    original pixels and radians (see :func:`.modules.where_to_box`); ``alphas`` ``(K, G, G)``
    decoded masks in [0, 1]; ``index`` ``(K,)`` slot numbers, ``rel_boxes`` ``(K, 5)``
    working-scale boxes relative to their cell and ``z_what`` ``(K, D)``
    (for the reconstruction); ``n_slots`` = ``N``.
    """

    scores: np.ndarray
    boxes: np.ndarray
    alphas: np.ndarray
    index: torch.Tensor
    rel_boxes: torch.Tensor
    z_what: torch.Tensor
    n_slots: int


def net_device(net: torch.nn.Module) -> torch.device:
    """The device of ``net``'s weights (where its inputs must go)."""
    return next(net.parameters()).device


def select_objects(objects: Objects, keep: np.ndarray) -> Objects:
    """The objects at ``keep`` (a boolean mask or indices into the ``K`` objects)."""
    rows = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
    index = torch.from_numpy(rows)
    return replace(
        objects,
        scores=objects.scores[rows],
        boxes=objects.boxes[rows],
        alphas=objects.alphas[rows],
        index=objects.index[index],
        rel_boxes=objects.rel_boxes[index],
        z_what=objects.z_what[index],
    )


def draw_masks(
    boxes: np.ndarray,
    alphas: np.ndarray,
    shape: tuple[int, int],
    alpha_threshold: float = 0.5,
    chunk: int = 256,
) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Every object's mask (alpha above ``alpha_threshold``) as drawn by :func:`draw_alphas`:
    ``(row, col)`` origin in ``shape`` ``(Y, X)`` and a boolean array per object."""
    return [
        (origin, alpha > alpha_threshold)
        for origin, alpha in draw_alphas(boxes, alphas, shape, chunk)
    ]


def draw_alphas(
    boxes: np.ndarray,
    alphas: np.ndarray,
    shape: tuple[int, int],
    chunk: int = 256,
    pixel_budget: int = 1 << 20,
) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Every decoded alpha drawn at pixel resolution inside its (turned) box, many at a time.

    ``boxes`` ``(K, 5)`` = (cy, cx, h, w, angle) in pixels / radians, ``alphas`` ``(K, G, G)``.
    Returns per object the ``(row, col)`` origin of its box's axis-aligned extent inside ``shape``
    ``(Y, X)`` and the alpha there (bilinear, 0 outside the box): the transform of the spatial
    transformer in training. Objects of similar extent share one ``grid_sample`` call (at most
    ``chunk`` of them and ``pixel_budget`` padded pixels), so small objects cost little more than
    their pixels and large ones are not padded to each other's size.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 5)
    cos, sin = np.cos(b[:, 4]), np.sin(b[:, 4])
    half_y = 0.5 * (np.abs(cos) * b[:, 2] + np.abs(sin) * b[:, 3])
    half_x = 0.5 * (np.abs(sin) * b[:, 2] + np.abs(cos) * b[:, 3])
    r0 = np.maximum(np.floor(b[:, 0] - half_y).astype(int), 0)
    c0 = np.maximum(np.floor(b[:, 1] - half_x).astype(int), 0)
    ny = np.maximum(np.minimum(np.ceil(b[:, 0] + half_y).astype(int), shape[0]) - r0, 0)
    nx = np.maximum(np.minimum(np.ceil(b[:, 1] + half_x).astype(int), shape[1]) - c0, 0)
    out: list[tuple[tuple[int, int], np.ndarray]] = [((0, 0), np.zeros((0, 0), np.float32))] * len(
        b
    )
    for idx in _chunks_by_extent(ny, nx, chunk, pixel_budget):
        hy, hx = max(1, int(ny[idx].max())), max(1, int(nx[idx].max()))
        py = r0[idx, None, None] + np.arange(hy)[None, :, None] + 0.5 - b[idx, 0, None, None]
        px = c0[idx, None, None] + np.arange(hx)[None, None, :] + 0.5 - b[idx, 1, None, None]
        cs, sn = cos[idx, None, None], sin[idx, None, None]
        u = (2.0 / b[idx, 3, None, None]) * (cs * px + sn * py)  # glimpse coordinates, [-1, 1]
        v = (2.0 / b[idx, 2, None, None]) * (cs * py - sn * px)  # across the box
        grid = torch.from_numpy(np.stack(np.broadcast_arrays(u, v), axis=-1).astype(np.float32))
        drawn = F.grid_sample(
            torch.from_numpy(np.ascontiguousarray(alphas[idx], np.float32))[:, None],
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )[:, 0].numpy()
        for j, k in enumerate(idx):
            if ny[k] and nx[k]:
                out[k] = ((int(r0[k]), int(c0[k])), drawn[j, : ny[k], : nx[k]])
    return out


def _tiles(n: int, tile: int, halo: int, cell: int) -> list[tuple[int, int, int, int]]:
    """(read_start, read_stop, keep_start, keep_stop) along one axis, all multiples of ``cell``."""
    if n <= tile:
        return [(0, n, 0, n)]
    out = []
    for start in range(0, n, tile):
        stop = min(n, start + tile)
        out.append((max(0, start - halo), min(n, stop + halo), start, stop))
    return out


@torch.no_grad()
def encode(net: AirNet, work: WorkingImage, tile: int = 1024, halo: int = 64) -> CellCodes:
    """Encoder outputs ``(1, Hc, Wc, S, ...)`` for a whole working image, tile by tile."""
    cell = net.geom.cell
    tile, halo = max(cell, tile // cell * cell), -(-halo // cell) * cell
    device = net_device(net)
    image = torch.from_numpy(work.image)[None, None].to(device)
    background = torch.from_numpy(work.background)[None, None].to(device)
    rows = _tiles(image.shape[-2], tile, halo, cell)
    cols = _tiles(image.shape[-1], tile, halo, cell)
    if len(rows) == 1 and len(cols) == 1:
        return net.encode(image, background)
    parts = []
    for r0, r1, k0, k1 in rows:
        row_parts = []
        for c0, c1, l0, l1 in cols:
            codes = net.encode(image[..., r0:r1, c0:c1], background[..., r0:r1, c0:c1])
            keep = (
                slice(None),
                slice((k0 - r0) // cell, (k1 - r0) // cell),
                slice((l0 - c0) // cell, (l1 - c0) // cell),
            )
            row_parts.append(
                [
                    getattr(codes, f)[keep]
                    for f in ("pres_logit", "where_loc", "where_scale", "features")
                ]
            )
        parts.append([torch.cat(t, dim=2) for t in zip(*row_parts, strict=True)])
    return CellCodes(*[torch.cat(t, dim=1) for t in zip(*parts, strict=True)])


@torch.no_grad()
def find_objects(net: AirNet, work: WorkingImage, min_score: float, tile: int = 1024) -> Objects:
    """Present slots with boxes and decoded alphas; only those slots are glimpsed and decoded.

    Runs on the device of ``net``'s weights; the returned objects are on the CPU (numpy arrays
    and CPU tensors), whatever that device.
    """
    device = net_device(net)
    codes = encode(net, work, tile)
    geom = net.geom
    prob = torch.sigmoid(codes.pres_logit)[0]  # (Hc, Wc, S)
    index = _present(prob, min_score).reshape(-1).nonzero().squeeze(1)
    rel = where_to_box(codes.where_loc, geom)[0]  # (Hc, Wc, S, 5)
    hc, wc = rel.shape[:2]
    centres = cell_centres(hc, wc, geom.cell, device)[:, :, None] + rel[..., :2]
    absolute = torch.cat([centres, rel[..., 2:]], dim=-1).reshape(-1, WHERE_DIM)[index]
    image = torch.from_numpy(work.image)[None, None].to(device)
    glimpses = glimpses_in_boxes(image, absolute[None, :, :2], absolute[None], geom.glimpse)[0]
    features = codes.features[0].reshape(-1, codes.features.shape[-1])[index]
    z_what = net.glimpse_encoder(glimpses, features)[:, : net.z_what_dim]
    _, alpha_logit = net.decoder(z_what)
    sy, sx = work.scale
    to_original = torch.tensor([1 / sy, 1 / sx, 1 / sy, 1 / sx, 1.0], device=device)
    return Objects(
        scores=prob.reshape(-1)[index].cpu().numpy(),
        boxes=(absolute * to_original).cpu().numpy(),
        alphas=torch.sigmoid(alpha_logit).cpu().numpy(),
        index=index.cpu(),
        rel_boxes=rel.reshape(-1, WHERE_DIM)[index].cpu(),
        z_what=z_what.cpu(),
        n_slots=prob.numel(),
    )


def _present(prob: torch.Tensor, min_score: float) -> torch.Tensor:
    """Slots ``(Hc, Wc, S)`` reported as objects.

    A slot is present when its probability reaches ``min_score``, or when it is the most likely
    slot of its 3 x 3 cell neighbourhood and the neighbourhood's expected count (the sum of the
    probabilities) reaches ``min_score``: an object whose centre lies on a cell border has its
    presence shared between neighbouring cells.
    """
    cell_max = prob.amax(dim=-1)[None, None]
    neighbourhood_max = F.max_pool2d(cell_max, 3, stride=1, padding=1)[0, 0]
    neighbourhood_sum = (
        9.0
        * F.avg_pool2d(
            prob.sum(dim=-1)[None, None], 3, stride=1, padding=1, count_include_pad=True
        )[0, 0]
    )
    peak = (prob == neighbourhood_max[..., None]) & (neighbourhood_sum[..., None] >= min_score)
    return (prob >= min_score) | peak


def _chunks_by_extent(
    ny: np.ndarray, nx: np.ndarray, chunk: int, pixel_budget: int
) -> list[np.ndarray]:
    """Object indices grouped by extent (``ny`` x ``nx`` pixels each, smallest first): at most
    ``chunk`` per group, and the group's size times its padded extent within ``pixel_budget``."""
    groups: list[np.ndarray] = []
    current: list[int] = []
    hy = hx = 0
    for k in np.argsort(ny * nx, kind="stable"):
        hy_k, hx_k = max(hy, int(ny[k])), max(hx, int(nx[k]))
        if current and (len(current) >= chunk or (len(current) + 1) * hy_k * hx_k > pixel_budget):
            groups.append(np.asarray(current))
            current, hy_k, hx_k = [], int(ny[k]), int(nx[k])
        current.append(int(k))
        hy, hx = hy_k, hx_k
    if current:
        groups.append(np.asarray(current))
    return groups


def label_map(
    shape: tuple[int, int],
    objects: Objects,
    alpha_threshold: float = 0.5,
    min_keep: float = 0.5,
    margin: int = 0,
    min_inside: float = MIN_INSIDE_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """int32 label map ``shape`` and the scores ``(n,)`` of labels ``1..n``.

    Objects keeping less than ``min_keep`` of their own mask after overlap resolution are dropped.
    ``margin`` > 0: ``shape`` is an image mirrored outwards by that many pixels (see
    :func:`~napari_cellist.borders.mirror_border`), and objects with less than ``min_inside`` of
    their pixels inside the original image are dropped, the others drawn again without them. Such
    an object is the mirror image of one inside (whose part in the image is a spurious sliver),
    while a nucleus cut by the border, made whole by the mirror, has about half of its pixels
    inside.
    """
    drawn = draw_alphas(objects.boxes, objects.alphas, shape)
    scores = objects.scores
    labels, kept = _paint_labels(shape, drawn, scores, alpha_threshold, min_keep)
    if margin:
        inside = np.bincount(crop_border(labels, margin).ravel(), minlength=len(kept) + 1)[1:]
        total = np.bincount(labels.ravel(), minlength=len(kept) + 1)[1:]
        copies = kept[inside < min_inside * total]
        if len(copies):
            rest = np.setdiff1d(np.arange(len(scores)), copies)
            drawn, scores = [drawn[k] for k in rest], scores[rest]
            labels, kept = _paint_labels(shape, drawn, scores, alpha_threshold, min_keep)
    return labels, scores[kept]


def _paint_labels(
    shape: tuple[int, int],
    drawn: list[tuple[tuple[int, int], np.ndarray]],
    scores: np.ndarray,
    alpha_threshold: float,
    min_keep: float,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`label_map` of objects already drawn (:func:`draw_alphas`), without the mirrored
    margin: the label map and ``(n,)`` the index of the object drawn as each label ``1..n``."""
    best = np.zeros(shape, np.float32)
    owner = np.zeros(shape, np.int32)
    own_area = np.zeros(len(scores) + 1)
    for k, (((r0, c0), box_alpha), score) in enumerate(zip(drawn, scores, strict=True), start=1):
        if box_alpha.size == 0:
            continue
        rows, cols = slice(r0, r0 + box_alpha.shape[0]), slice(c0, c0 + box_alpha.shape[1])
        inside = box_alpha > alpha_threshold
        own_area[k] = inside.sum()
        value = np.where(inside, score * box_alpha, 0.0)
        region_best, region_owner = best[rows, cols], owner[rows, cols]
        wins = value > region_best
        region_best[wins] = value[wins]
        region_owner[wins] = k
    kept_area = np.bincount(owner.ravel(), minlength=len(own_area))
    keep = (kept_area >= min_keep * np.maximum(own_area, 1)) & (kept_area > 0)
    keep[0] = False
    new_ids = np.zeros(len(own_area), np.int32)
    new_ids[keep] = np.arange(1, keep.sum() + 1)
    return new_ids[owner], np.flatnonzero(keep) - 1


@torch.no_grad()
def reconstruction(
    net: AirNet, work: WorkingImage, objects: Objects, shape: tuple[int, int]
) -> np.ndarray:
    """What the model explains: background plus the present objects, at the original ``shape``
    (normalised intensity units: 1st..99.8th percentile of the image = 0..1, whatever the
    model's working intensity scale).

    Same compositing as :func:`.modules.composite`, but only the present objects' windows
    are drawn (scatter-added into the image), so the cost does not grow with empty cells.
    Runs on the device of ``net``'s weights; the result is a numpy array.
    """
    geom = net.geom
    if len(objects.scores) == 0:  # nothing found: the background alone
        return background_at(work, geom, shape)
    device = net_device(net)
    appearance, alpha_logit = net.decoder(objects.z_what.to(device))
    glimpse = torch.stack([appearance, torch.sigmoid(alpha_logit)], dim=1)
    placed = place_glimpses(glimpse, objects.rel_boxes.to(device), geom)  # (K, 2, Wn, Wn)
    alpha = placed[:, 1].clamp(max=1.0 - 1e-4)
    values = torch.stack([alpha * placed[:, 0], alpha, torch.log1p(-alpha)])  # (3, K, Wn, Wn)
    h_img, w_img = work.image.shape
    pad = (geom.window - geom.cell) // 2
    wp = w_img + 2 * pad
    cell_id = objects.index.to(device) // geom.slots
    cols = w_img // geom.cell
    top, left = (cell_id // cols) * geom.cell, (cell_id % cols) * geom.cell
    offsets = torch.arange(geom.window, device=device)
    flat = (
        (top[:, None, None] + offsets[None, :, None]) * wp
        + left[:, None, None]
        + offsets[None, None, :]
    ).reshape(-1)
    canvas = torch.zeros(3, (h_img + 2 * pad) * wp, device=device)
    canvas.index_add_(1, flat, values.reshape(3, -1))
    canvas = canvas.view(3, h_img + 2 * pad, wp)[:, pad : pad + h_img, pad : pad + w_img]
    coverage = 1.0 - torch.exp(canvas[2])
    foreground = canvas[0] / (canvas[1] + 1e-6)
    recon = torch.from_numpy(work.background).to(device) + coverage * foreground
    h, w = work.shape
    return resize(expand_intensity(recon[:h, :w].cpu().numpy(), geom), shape)


def background_at(work: WorkingImage, geom: Geometry, shape: tuple[int, int]) -> np.ndarray:
    """The model's background estimate of ``work`` (its unpadded part) at ``shape`` ``(Y, X)``,
    in normalised linear intensity units."""
    h, w = work.shape
    return resize(expand_intensity(work.background[:h, :w], geom), shape)


def foreground_signal(image: np.ndarray, work: WorkingImage, geom: Geometry) -> np.ndarray:
    """How far each pixel of ``image`` ``(Y, X)`` rises above the model's background estimate
    of its working image ``work`` (normalised linear intensity units, full resolution)."""
    return normalise_percentile(image, 1.0, 99.8) - background_at(work, geom, image.shape)
