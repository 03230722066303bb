"""Test-time grid shifts: one set of objects from AIR's predictions at several grid positions.

An object's presence depends on where it falls within its grid cell, so
``AirModel.predict`` runs the encoder at several grid positions (shifted by half a cell), moves
each run's boxes back (:func:`shift_objects`) and fuses the runs (:func:`fuse_runs`): objects
whose masks overlap are one object, scored by its mean presence over the runs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from scipy import sparse

from .inference import Objects, draw_masks, select_objects

# Decoded alphas are divided by their peak, but by no less than this (see object_shapes).
ALPHA_PEAK_FLOOR = 0.2


def shift_objects(objects: Objects, dy: float, dx: float) -> Objects:
    """``objects`` with their boxes moved by ``(dy, dx)`` pixels (from a padded or cropped image's
    coordinates back to the original's)."""
    boxes = objects.boxes.copy()
    boxes[:, 0] += dy
    boxes[:, 1] += dx
    return replace(objects, boxes=boxes)


def _concat(runs: list[Objects]) -> Objects:
    return Objects(
        scores=np.concatenate([r.scores for r in runs]),
        boxes=np.concatenate([r.boxes for r in runs]),
        alphas=np.concatenate([r.alphas for r in runs]),
        index=torch.cat([r.index for r in runs]),
        rel_boxes=torch.cat([r.rel_boxes for r in runs]),
        z_what=torch.cat([r.z_what for r in runs]),
        n_slots=sum(r.n_slots for r in runs),
    )


def fuse_runs(
    runs: list[Objects],
    shape: tuple[int, int],
    min_score: float,
    alpha_threshold: float = 0.5,
    match_iou: float = 0.5,
    match_scale: float = 1.0,
) -> Objects:
    """One set of objects from several predictions of the same image (test-time augmentation).

    Objects of different runs whose masks overlap with IoU >= ``match_iou`` (> 0) are one object,
    matched greedily from the most confident object down. Its score is the mean presence over
    the runs (0 where a run did not find it) and it keeps the box and mask of its most confident
    member; objects scoring below ``min_score`` are dropped.
    Masks are the alphas relative to their peak (:func:`object_shapes`), so faint objects that the
    runs agree on keep their outline. (A single run has no such vote: there an alpha too faint to
    reach ``alpha_threshold`` is what drops the decoder's guesses, see ``AirModel.predict_iter``.)
    ``shape`` is the ``(Y, X)`` image the boxes refer to; masks are compared after shrinking
    by ``match_scale`` (e.g. to the working scale: the same IoU, much less drawing). The
    result's slot fields (``index``, ``rel_boxes``) mix runs: draw reconstructions from one run.
    """
    if not match_iou > 0:
        raise ValueError(f"match_iou must be > 0 (objects must overlap to match), got {match_iou}.")
    pooled = _concat(runs)
    pooled = replace(pooled, alphas=object_shapes(pooled.alphas))
    run_of = np.repeat(np.arange(len(runs)), [len(r.scores) for r in runs])
    boxes = pooled.boxes * np.array([match_scale] * 4 + [1.0], np.float32)
    small = (
        max(1, int(np.ceil(shape[0] * match_scale))),
        max(1, int(np.ceil(shape[1] * match_scale))),
    )
    drawn = draw_masks(boxes, pooled.alphas, small, alpha_threshold)
    overlaps, areas = _mask_overlaps(drawn, small)
    representative = np.full(len(drawn), -1)  # which fused object each representative object is
    members: list[set[int]] = []
    keep: list[int] = []
    totals: list[float] = []
    for k in np.argsort(-pooled.scores, kind="stable"):
        if not areas[k]:
            continue
        row = slice(overlaps.indptr[k], overlaps.indptr[k + 1])
        neighbours, shared = overlaps.indices[row], overlaps.data[row]
        fused_ids = representative[neighbours]
        best, best_iou = -1, match_iou
        for order in np.argsort(fused_ids, kind="stable"):  # fused objects in order of creation
            j = fused_ids[order]
            if j < 0 or run_of[k] in members[j]:
                continue
            iou = shared[order] / (areas[k] + areas[neighbours[order]] - shared[order])
            if iou >= best_iou:
                best, best_iou = j, iou
        if best >= 0:
            members[best].add(int(run_of[k]))
            totals[best] += float(pooled.scores[k])
            continue
        representative[k] = len(keep)
        members.append({int(run_of[k])})
        keep.append(int(k))
        totals.append(float(pooled.scores[k]))
    scores = np.asarray(totals, np.float32) / len(runs)
    fused = replace(select_objects(pooled, np.asarray(keep, np.int64)), scores=scores)
    return select_objects(fused, scores >= min_score)


def object_shapes(alphas: np.ndarray, peak_floor: float = ALPHA_PEAK_FLOOR) -> np.ndarray:
    """Decoded alphas ``(K, G, G)`` scaled so that each object's peak is 1: its shape.

    In the model an object adds ``alpha * contrast`` onto the background, with a contrast of at
    least ``min_contrast``. An object dimmer than that is drawn with a lower alpha instead (a faint
    nucleus of half the minimum contrast peaks near alpha 0.5), so the alpha's height mixes
    coverage with brightness and a fixed alpha threshold loses faint objects that the encoder
    found. Relative to its own peak, the alpha is the object's shape whatever its brightness.
    Peaks below ``peak_floor`` are divided by ``peak_floor`` only (they stay faint: nothing there
    to outline).
    """
    if alphas.size == 0:
        return alphas
    peaks = alphas.reshape(len(alphas), -1).max(axis=1)
    return (alphas / np.maximum(peaks, peak_floor)[:, None, None]).astype(np.float32)


def _mask_overlaps(
    drawn: list[tuple[tuple[int, int], np.ndarray]], shape: tuple[int, int]
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Pixels shared by every pair of masks drawn in ``shape`` ``(Y, X)`` (:func:`draw_masks`):
    a sparse ``(K, K)`` int matrix (overlapping pairs only, the diagonal holding each mask's area)
    and the ``(K,)`` areas. One sparse product instead of a comparison per pair."""
    owners, pixels = [], []
    for k, ((r0, c0), mask) in enumerate(drawn):
        rows, cols = np.nonzero(mask)
        owners.append(np.full(len(rows), k))
        pixels.append((rows + r0) * shape[1] + cols + c0)
    owner, pixel = (
        np.concatenate([[], *owners]).astype(np.int64),
        np.concatenate([[], *pixels]).astype(np.int64),
    )
    membership = sparse.csr_matrix(
        (np.ones(len(owner), np.int32), (owner, pixel)), shape=(len(drawn), shape[0] * shape[1])
    )
    overlaps = (membership @ membership.T).tocsr()
    overlaps.sort_indices()
    return overlaps, np.asarray(overlaps.diagonal(), np.int64)
