"""Prediction with a trained AIR network: one amortised encoder pass (tiled for large images), then
objects decoded from the present slots and drawn at the image's own resolution.

The label map comes from the decoded alpha masks inside each object's box: a pixel belongs to the
object with the highest ``presence * alpha`` among those whose alpha exceeds a threshold. Objects
that keep too little of their own mask after this (duplicates of a neighbour) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .model import AirNet, CellCodes
from .modules import cell_centres, place_glimpses, where_to_box
from .supervision import WorkingImage, resize


@dataclass(frozen=True)
class Objects:
    """Present objects (``K`` of the ``N`` slots of a working image).

    ``scores`` ``(K,)`` presence probabilities; ``boxes`` ``(K, 4)`` = (cy, cx, h, w) in original
    pixels; ``alphas`` ``(K, G, G)`` decoded masks in [0, 1]; ``index`` ``(K,)`` slot numbers,
    ``rel_boxes`` ``(K, 4)`` working-scale boxes relative to their cell and ``z_what`` ``(K, D)``
    (for the reconstruction); ``n_slots`` = ``N``.
    """

    scores: np.ndarray
    boxes: np.ndarray
    alphas: np.ndarray
    index: torch.Tensor
    rel_boxes: torch.Tensor
    z_what: torch.Tensor
    n_slots: int


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
    image = torch.from_numpy(work.image)[None, None]
    background = torch.from_numpy(work.background)[None, None]
    rows = _tiles(image.shape[-2], tile, halo, cell)
    cols = _tiles(image.shape[-1], tile, halo, cell)
    if len(rows) == 1 and len(cols) == 1:
        return net.encode(image, background)
    parts = []
    for r0, r1, k0, k1 in rows:
        row_parts = []
        for c0, c1, l0, l1 in cols:
            codes = net.encode(image[..., r0:r1, c0:c1], background[..., r0:r1, c0:c1])
            keep = (slice(None), slice((k0 - r0) // cell, (k1 - r0) // cell),
                    slice((l0 - c0) // cell, (l1 - c0) // cell))
            row_parts.append([getattr(codes, f)[keep] for f in ("pres_logit", "where_loc", "where_scale", "features")])
        parts.append([torch.cat(t, dim=2) for t in zip(*row_parts, strict=True)])
    return CellCodes(*[torch.cat(t, dim=1) for t in zip(*parts, strict=True)])


def _glimpses_at(image: torch.Tensor, boxes: torch.Tensor, g: int) -> torch.Tensor:
    """``(K, g*g)`` glimpses of ``image`` ``(1, 1, H, W)`` in absolute boxes ``(K, 4)``."""
    h, w = image.shape[-2:]
    theta = torch.zeros(len(boxes), 2, 3)
    theta[:, 0, 0] = boxes[:, 3] / w
    theta[:, 0, 2] = 2.0 * boxes[:, 1] / w - 1.0
    theta[:, 1, 1] = boxes[:, 2] / h
    theta[:, 1, 2] = 2.0 * boxes[:, 0] / h - 1.0
    grid = F.affine_grid(theta, [len(boxes), 1, g, g], align_corners=False).view(1, -1, g, 2)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.view(len(boxes), g * g)


@torch.no_grad()
def find_objects(net: AirNet, work: WorkingImage, min_score: float, tile: int = 1024) -> Objects:
    """Present slots with boxes and decoded alphas; only those slots are glimpsed and decoded."""
    codes = encode(net, work, tile)
    geom = net.geom
    prob = torch.sigmoid(codes.pres_logit)[0]  # (Hc, Wc, S)
    index = _present(prob, min_score).reshape(-1).nonzero().squeeze(1)
    rel = where_to_box(codes.where_loc, geom)[0]  # (Hc, Wc, S, 4)
    hc, wc = rel.shape[:2]
    centres = cell_centres(hc, wc, geom.cell)[:, :, None] + rel[..., :2]
    absolute = torch.cat([centres, rel[..., 2:]], dim=-1).reshape(-1, 4)[index]
    glimpses = _glimpses_at(torch.from_numpy(work.image)[None, None], absolute, geom.glimpse)
    features = codes.features[0].reshape(-1, codes.features.shape[-1])[index]
    z_what = net.glimpse_encoder(glimpses, features)[:, : net.z_what_dim]
    _, alpha_logit = net.decoder(z_what)
    sy, sx = work.scale
    to_original = torch.tensor([1 / sy, 1 / sx, 1 / sy, 1 / sx])
    return Objects(
        scores=prob.reshape(-1)[index].numpy(), boxes=(absolute * to_original).numpy(),
        alphas=torch.sigmoid(alpha_logit).numpy(), index=index,
        rel_boxes=rel.reshape(-1, 4)[index], z_what=z_what, n_slots=prob.numel(),
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
    neighbourhood_sum = 9.0 * F.avg_pool2d(
        prob.sum(dim=-1)[None, None], 3, stride=1, padding=1, count_include_pad=True
    )[0, 0]
    peak = (prob == neighbourhood_max[..., None]) & (neighbourhood_sum[..., None] >= min_score)
    return (prob >= min_score) | peak


def _interp_matrix(start: int, stop: int, centre: float, length: float, g: int) -> np.ndarray:
    """Bilinear weights ``(stop - start, g)`` sampling a glimpse axis at pixel centres of a box."""
    pos = ((np.arange(start, stop) + 0.5 - centre) / length + 0.5) * g - 0.5
    low = np.floor(pos).astype(int)
    frac = pos - low
    out = np.zeros((stop - start, g), np.float32)
    rows = np.arange(stop - start)
    for idx, wgt in ((low, 1.0 - frac), (low + 1, frac)):
        ok = (idx >= 0) & (idx < g)
        out[rows[ok], idx[ok]] = wgt[ok]
    return out


def label_map(
    shape: tuple[int, int], objects: Objects, alpha_threshold: float = 0.5,
    min_keep: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """int32 label map ``shape`` and the scores ``(n,)`` of labels ``1..n``.

    Objects keeping less than ``min_keep`` of their own mask after overlap resolution are dropped.
    """
    best = np.zeros(shape, np.float32)
    owner = np.zeros(shape, np.int32)
    own_area = np.zeros(len(objects.scores) + 1)
    g = objects.alphas.shape[-1]
    for k, ((cy, cx, h, w), alpha, score) in enumerate(
        zip(objects.boxes, objects.alphas, objects.scores, strict=True), start=1
    ):
        r0, r1 = max(0, int(np.floor(cy - h / 2))), min(shape[0], int(np.ceil(cy + h / 2)))
        c0, c1 = max(0, int(np.floor(cx - w / 2))), min(shape[1], int(np.ceil(cx + w / 2)))
        if r1 <= r0 or c1 <= c0:
            continue
        box_alpha = _interp_matrix(r0, r1, cy, h, g) @ alpha @ _interp_matrix(c0, c1, cx, w, g).T
        inside = box_alpha > alpha_threshold
        own_area[k] = inside.sum()
        value = np.where(inside, score * box_alpha, 0.0)
        region_best, region_owner = best[r0:r1, c0:c1], owner[r0:r1, c0:c1]
        wins = value > region_best
        region_best[wins] = value[wins]
        region_owner[wins] = k
    kept_area = np.bincount(owner.ravel(), minlength=len(own_area))
    keep = (kept_area >= min_keep * np.maximum(own_area, 1)) & (kept_area > 0)
    keep[0] = False
    new_ids = np.zeros(len(own_area), np.int32)
    new_ids[keep] = np.arange(1, keep.sum() + 1)
    scores = np.concatenate([[0.0], objects.scores])[keep]
    return new_ids[owner], scores


@torch.no_grad()
def reconstruction(net: AirNet, work: WorkingImage, objects: Objects, shape: tuple[int, int]) -> np.ndarray:
    """What the model explains: background plus the present objects, at the original ``shape``
    (normalised intensity units).

    Same compositing as :func:`.modules.composite`, but only the present objects' windows
    are drawn (scatter-added into the image), so the cost does not grow with empty cells.
    """
    geom = net.geom
    appearance, alpha_logit = net.decoder(objects.z_what)
    glimpse = torch.stack([appearance, torch.sigmoid(alpha_logit)], dim=1)
    placed = place_glimpses(glimpse, objects.rel_boxes, geom)  # (K, 2, Wn, Wn)
    alpha = placed[:, 1].clamp(max=1.0 - 1e-4)
    values = torch.stack([alpha * placed[:, 0], alpha, torch.log1p(-alpha)])  # (3, K, Wn, Wn)
    h_img, w_img = work.image.shape
    pad = (geom.window - geom.cell) // 2
    wp = w_img + 2 * pad
    cell_id = objects.index // geom.slots
    cols = w_img // geom.cell
    top, left = (cell_id // cols) * geom.cell, (cell_id % cols) * geom.cell
    offsets = torch.arange(geom.window)
    flat = ((top[:, None, None] + offsets[None, :, None]) * wp
            + left[:, None, None] + offsets[None, None, :]).reshape(-1)
    canvas = torch.zeros(3, (h_img + 2 * pad) * wp)
    canvas.index_add_(1, flat, values.reshape(3, -1))
    canvas = canvas.view(3, h_img + 2 * pad, wp)[:, pad: pad + h_img, pad: pad + w_img]
    coverage = 1.0 - torch.exp(canvas[2])
    foreground = canvas[0] / (canvas[1] + 1e-6)
    recon = torch.from_numpy(work.background) + coverage * foreground
    h, w = work.shape
    return resize(recon[:h, :w].numpy(), shape)
