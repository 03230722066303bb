"""Instance segmentation metrics: AP at IoU thresholds, mean AP, F1, count error.

AP at a threshold follows the cell-segmentation convention (Caicedo et al. 2019, Cellpose,
StarDist): ``TP / (TP + FP + FN)`` where a predicted object is a true positive when it is matched
one-to-one to a ground-truth object with IoU >= threshold (optimal matching; for thresholds >= 0.5
a match is unique anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .labels import overlap_table

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 1.0, 0.05), 2))


def iou_matrix(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every ground-truth object with every predicted object.

    Returns
    -------
    iou : np.ndarray
        float ``(n_true, n_pred)``.
    true_ids, pred_ids : np.ndarray
        The ids of the rows / columns.
    """
    true_ids = np.unique(truth)
    true_ids = true_ids[true_ids > 0]
    pred_ids = np.unique(pred)
    pred_ids = pred_ids[pred_ids > 0]
    iou = np.zeros((len(true_ids), len(pred_ids)))
    if len(true_ids) == 0 or len(pred_ids) == 0:
        return iou, true_ids, pred_ids
    pairs, shared = overlap_table(truth, pred)
    area_t = np.bincount(truth.ravel().astype(np.int64))
    area_p = np.bincount(pred.ravel().astype(np.int64))
    rows = np.searchsorted(true_ids, pairs[:, 0])
    cols = np.searchsorted(pred_ids, pairs[:, 1])
    union = area_t[pairs[:, 0]] + area_p[pairs[:, 1]] - shared
    iou[rows, cols] = shared / union
    return iou, true_ids, pred_ids


def best_matches(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each object of ``truth``, the object of ``pred`` overlapping it best, and their IoU.

    Returns
    -------
    true_ids : np.ndarray
        The ids of ``truth``'s objects, ascending.
    pred_ids : np.ndarray
        ``(n_true,)`` id of the best-overlapping object of ``pred`` (the lowest id on a tie), 0
        where none overlaps.
    best_iou : np.ndarray
        float ``(n_true,)``; 0 where no predicted object overlaps.
    """
    iou, true_ids, pred_ids = iou_matrix(truth, pred)
    if not iou.shape[1]:
        return true_ids, np.zeros(len(true_ids), np.int64), np.zeros(len(true_ids))
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(len(true_ids)), best]
    return true_ids, np.where(best_iou > 0, pred_ids[best], 0), best_iou


def best_iou_per_object(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each object of ``truth`` and its best IoU with any object of ``pred`` (see
    :func:`best_matches`). An object is *missed* at IoU 0.5 where this is below 0.5."""
    true_ids, _, best_iou = best_matches(truth, pred)
    return true_ids, best_iou


def matched_pairs(iou: np.ndarray, threshold: float) -> int:
    """Number of one-to-one matches with IoU >= ``threshold`` (maximum matching)."""
    if iou.size == 0:
        return 0
    if threshold >= 0.5:  # matches are unique: at most one partner above 0.5 per object
        return int((iou >= threshold).sum())
    cost = -(iou >= threshold).astype(float) - iou * 1e-3
    rows, cols = linear_sum_assignment(cost)
    return int((iou[rows, cols] >= threshold).sum())


@dataclass(frozen=True)
class Scores:
    """Scores of one image (or of several, pooled)."""

    ap50: float
    mean_ap: float
    f1: float
    precision: float
    recall: float
    n_true: int
    n_pred: int
    count_error: float  # |n_pred - n_true| / n_true (relative; 0 when both are 0)

    def as_dict(self) -> dict[str, float]:
        """Plain dict (JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class _Counts:
    tp: tuple[int, ...]  # one per IoU threshold
    n_true: int
    n_pred: int


def _counts(truth: np.ndarray, pred: np.ndarray) -> _Counts:
    if truth.shape != pred.shape:
        raise ValueError(f"Ground truth {truth.shape} and prediction {pred.shape} differ in shape.")
    iou, true_ids, pred_ids = iou_matrix(truth, pred)
    tps = tuple(matched_pairs(iou, t) for t in IOU_THRESHOLDS)
    return _Counts(tps, len(true_ids), len(pred_ids))


def _scores(counts: Sequence[_Counts]) -> Scores:
    n_true = sum(c.n_true for c in counts)
    n_pred = sum(c.n_pred for c in counts)
    tps = np.sum([c.tp for c in counts], axis=0) if counts else np.zeros(len(IOU_THRESHOLDS))
    aps = [tp / (n_true + n_pred - tp) if (n_true + n_pred - tp) else 1.0 for tp in tps]
    tp50 = tps[0]
    precision = tp50 / n_pred if n_pred else float(n_true == 0)
    recall = tp50 / n_true if n_true else float(n_pred == 0)
    f1 = 2 * tp50 / (n_true + n_pred) if (n_true + n_pred) else 1.0
    count_errors = [
        abs(c.n_pred - c.n_true) / c.n_true if c.n_true else float(c.n_pred > 0) for c in counts
    ]
    return Scores(
        ap50=float(aps[0]),
        mean_ap=float(np.mean(aps)),
        f1=float(f1),
        precision=float(precision),
        recall=float(recall),
        n_true=int(n_true),
        n_pred=int(n_pred),
        count_error=float(np.mean(count_errors)) if count_errors else 0.0,
    )


def exclude_border_objects(
    truth: np.ndarray, pred: np.ndarray, margin: int
) -> tuple[np.ndarray, np.ndarray]:
    """Drop objects within ``margin`` px of the image border from both maps.

    For data sets whose border objects are not annotated (Cell Tracking Challenge HeLa): a
    predicted object is dropped when it touches the margin band, like ground-truth objects.
    """
    if margin <= 0:
        return truth, pred
    band = np.ones(truth.shape, bool)
    band[(slice(margin, -margin),) * truth.ndim] = False
    out = []
    for labels in (truth, pred):
        touching = np.unique(labels[band])
        cleaned = labels.copy()
        cleaned[np.isin(cleaned, touching[touching > 0])] = 0
        out.append(cleaned)
    return out[0], out[1]


def score_image(truth: np.ndarray, pred: np.ndarray, border_margin: int = 0) -> Scores:
    """Scores of one predicted label map against its ground truth (same shape)."""
    truth, pred = exclude_border_objects(truth, pred, border_margin)
    return _scores([_counts(truth, pred)])


def score_images(
    truths: Sequence[np.ndarray], preds: Sequence[np.ndarray], border_margin: int = 0
) -> Scores:
    """Scores pooled over images: TP/FP/FN summed, count error averaged per image."""
    if len(truths) != len(preds):
        raise ValueError(f"{len(truths)} ground-truth maps but {len(preds)} predictions.")
    counts = [
        _counts(*exclude_border_objects(t, p, border_margin))
        for t, p in zip(truths, preds, strict=True)
    ]
    return _scores(counts)


REDRAW_IOU = 0.7


@dataclass(frozen=True)
class EditCounts:
    """Edits a person makes to turn a prediction into the ground truth (one image or pooled).

    A predicted object matched one-to-one to a true object at IoU >= 0.5 is kept, and redrawn when
    its IoU is below ``redraw_iou``; every unmatched predicted object is deleted and every unmatched
    true object is drawn by hand.
    """

    deleted: int
    added: int
    redrawn: int
    n_true: int

    @property
    def total(self) -> int:
        """All edits: deletions + additions + redraws."""
        return self.deleted + self.added + self.redrawn

    @property
    def per_100_objects(self) -> float:
        """Edits per 100 true objects (0 when the image has no object and nothing was predicted)."""
        if self.n_true == 0:
            return 100.0 * self.total if self.total else 0.0
        return 100.0 * self.total / self.n_true

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.deleted + other.deleted,
            self.added + other.added,
            self.redrawn + other.redrawn,
            self.n_true + other.n_true,
        )

    def as_dict(self) -> dict[str, float]:
        """Plain dict (JSON), with the total and edits per 100 objects."""
        return {**asdict(self), "total": self.total, "per_100_objects": self.per_100_objects}


def edit_counts(
    truth: np.ndarray, pred: np.ndarray, redraw_iou: float = REDRAW_IOU, border_margin: int = 0
) -> EditCounts:
    """Count the edits that turn ``pred`` into ``truth`` (see :class:`EditCounts`).

    Parameters
    ----------
    truth, pred : np.ndarray
        Integer label maps of the same shape (any dimensionality), 0 = background.
    redraw_iou : float
        A matched object whose IoU with its true object is below this is redrawn (0.7 by default).
    border_margin : int
        Ignore objects within this many pixels of the border (see :func:`exclude_border_objects`).
    """
    if truth.shape != pred.shape:
        raise ValueError(f"Ground truth {truth.shape} and prediction {pred.shape} differ in shape.")
    truth, pred = exclude_border_objects(truth, pred, border_margin)
    iou, true_ids, pred_ids = iou_matrix(truth, pred)
    matched = iou >= 0.5  # at most one partner per object above 0.5
    n_matched = int(matched.sum())
    redrawn = int((matched & (iou < redraw_iou)).sum())
    return EditCounts(
        deleted=len(pred_ids) - n_matched,
        added=len(true_ids) - n_matched,
        redrawn=redrawn,
        n_true=len(true_ids),
    )


def edit_counts_pooled(
    truths: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    redraw_iou: float = REDRAW_IOU,
    border_margin: int = 0,
) -> EditCounts:
    """:func:`edit_counts` summed over images (edits per 100 objects of all images together)."""
    if len(truths) != len(preds):
        raise ValueError(f"{len(truths)} ground-truth maps but {len(preds)} predictions.")
    total = EditCounts(0, 0, 0, 0)
    for truth, pred in zip(truths, preds, strict=True):
        total = total + edit_counts(truth, pred, redraw_iou, border_margin)
    return total
