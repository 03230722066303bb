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

from .model import AirNet, CellCodes
from .modules import cell_centres, where_to_box
from .supervision import WorkingImage, resize


@dataclass(frozen=True)
class Objects:
    """Present objects: ``scores`` ``(K,)``, ``boxes`` ``(K, 4)`` = (cy, cx, h, w) in original
    pixels, ``alphas`` ``(K, G, G)`` in [0, 1]; ``presence``/``z_where``/``z_what`` for all slots."""

    scores: np.ndarray
    boxes: np.ndarray
    alphas: np.ndarray
    presence: torch.Tensor
    z_where: torch.Tensor
    z_what: torch.Tensor


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


@torch.no_grad()
def find_objects(net: AirNet, work: WorkingImage, min_score: float, tile: int = 1024) -> Objects:
    """Present slots (presence probability >= ``min_score``) with boxes and decoded alphas."""
    codes = encode(net, work, tile)
    image = torch.from_numpy(work.image)[None, None]
    z_what, _ = net.what_params(image, codes.where_loc, codes.features)
    presence = torch.sigmoid(codes.pres_logit).reshape(-1)
    boxes = where_to_box(codes.where_loc, net.geom)  # (1, Hc, Wc, S, 4)
    hc, wc = boxes.shape[1:3]
    centres = cell_centres(hc, wc, net.geom.cell)[None, :, :, None] + boxes[..., :2]
    flat = torch.cat([centres, boxes[..., 2:]], dim=-1).reshape(-1, 4)
    keep = (presence >= min_score).nonzero().squeeze(1)
    _, alpha_logit = net.decoder(z_what.reshape(-1, z_what.shape[-1])[keep])
    sy, sx = work.scale
    scale = torch.tensor([1 / sy, 1 / sx, 1 / sy, 1 / sx])
    return Objects(
        scores=presence[keep].numpy(), boxes=(flat[keep] * scale).numpy(),
        alphas=torch.sigmoid(alpha_logit).numpy(),
        presence=presence.reshape(1, -1), z_where=codes.where_loc.reshape(1, -1, 4),
        z_what=z_what.reshape(1, -1, z_what.shape[-1]),
    )


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
    """What the model explains: the rendered image at the original ``shape`` (normalised units)."""
    background = torch.from_numpy(work.background)[None, None]
    hard = (objects.presence >= 0.5).float()
    recon, _ = net.render(hard, objects.z_where, objects.z_what, background)
    h, w = work.shape
    return resize(recon[0, 0, :h, :w].numpy(), shape)
