"""Label-map operations: relabel, merge, remove, and the diff of two label maps (corrections)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from skimage.segmentation import relabel_sequential as _relabel_sequential


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """int32 copy of ``labels`` with ids renumbered 1..N in order of appearance of the old ids."""
    return _relabel_sequential(np.asarray(labels).astype(np.int32, copy=False))[0].astype(np.int32)


def label_ids(labels: np.ndarray) -> np.ndarray:
    """Sorted non-zero ids present in ``labels``."""
    ids = np.unique(labels)
    return ids[ids != 0]


def next_free_id(labels: np.ndarray) -> int:
    """The smallest id larger than every id in ``labels``."""
    return int(labels.max(initial=0)) + 1


def merge_labels(labels: np.ndarray, ids: Iterable[int]) -> tuple[np.ndarray, int]:
    """Give every object in ``ids`` the smallest of those ids.

    Returns
    -------
    labels : np.ndarray
        A new label map.
    kept : int
        The id the merged object carries (0 when ``ids`` is empty).
    """
    ids = sorted({int(i) for i in ids if int(i) != 0})
    out = labels.copy()
    if not ids:
        return out, 0
    out[np.isin(out, ids)] = ids[0]
    return out, ids[0]


def remove_labels(labels: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """Copy of ``labels`` with the objects in ``ids`` erased."""
    out = labels.copy()
    out[np.isin(out, list(ids))] = 0
    return out


@dataclass(frozen=True)
class Corrections:
    """What changed between a prediction (``before``) and a corrected label map (``after``).

    Ids in ``added`` / ``merged`` targets / ``split`` parts / the second element of ``modified``
    are ids of ``after``; the others are ids of ``before``.
    """

    added: tuple[int, ...] = ()
    deleted: tuple[int, ...] = ()
    modified: tuple[tuple[int, int], ...] = ()
    merged: tuple[tuple[tuple[int, ...], int], ...] = ()
    split: tuple[tuple[int, tuple[int, ...]], ...] = ()
    unchanged: tuple[int, ...] = field(default=())

    @property
    def n_changes(self) -> int:
        """Number of edit operations a person made."""
        return (
            len(self.added)
            + len(self.deleted)
            + len(self.modified)
            + len(self.merged)
            + len(self.split)
        )

    def summary(self) -> dict[str, int]:
        """Counts per kind of change."""
        return {
            "added": len(self.added),
            "deleted": len(self.deleted),
            "modified": len(self.modified),
            "merged": len(self.merged),
            "split": len(self.split),
            "unchanged": len(self.unchanged),
        }


def overlap_table(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel overlaps between the objects of two label maps of the same shape.

    Returns
    -------
    pairs : np.ndarray
        int ``(K, 2)`` ``(before_id, after_id)`` pairs that share pixels (both non-zero).
    overlap : np.ndarray
        int ``(K,)`` shared pixel counts.
    """
    if before.shape != after.shape:
        raise ValueError(f"Label maps differ in shape: {before.shape} vs {after.shape}.")
    b = before.ravel().astype(np.int64)
    a = after.ravel().astype(np.int64)
    both = (b > 0) & (a > 0)
    base = int(a.max(initial=0)) + 1
    uniq, counts = np.unique(b[both] * base + a[both], return_counts=True)
    pairs = (
        np.stack([uniq // base, uniq % base], axis=1) if len(uniq) else np.zeros((0, 2), np.int64)
    )
    return pairs, counts


def diff_label_maps(
    before: np.ndarray, after: np.ndarray, match_iou: float = 0.3, part_fraction: float = 0.5
) -> Corrections:
    """Classify the edits that turn ``before`` into ``after``.

    Parameters
    ----------
    before, after : np.ndarray
        Label maps of the same shape (prediction and correction).
    match_iou : float
        Minimum IoU for an object to count as the same object, modified.
    part_fraction : float
        Fraction of an object's area that must lie inside another for merge / split detection.
    """
    from .geometry import areas

    pairs, overlap = overlap_table(before, after)
    area_b, area_a = areas(before), areas(after)
    parents: dict[int, list[int]] = {}
    children: dict[int, list[int]] = {}
    best: dict[int, tuple[float, int]] = {}
    for (b_id, a_id), shared in zip(pairs.tolist(), overlap.tolist(), strict=True):
        if shared > part_fraction * area_b[b_id]:
            parents.setdefault(a_id, []).append(b_id)
        if shared > part_fraction * area_a[a_id]:
            children.setdefault(b_id, []).append(a_id)
        iou = shared / (area_b[b_id] + area_a[a_id] - shared)
        if iou > best.get(a_id, (0.0, 0))[0]:
            best[a_id] = (iou, b_id)
    merged = tuple((tuple(sorted(bs)), a) for a, bs in sorted(parents.items()) if len(bs) >= 2)
    split = tuple((b, tuple(sorted(as_))) for b, as_ in sorted(children.items()) if len(as_) >= 2)
    used_b = {b for bs, _ in merged for b in bs} | {b for b, _ in split}
    used_a = {a for _, a in merged} | {a for _, as_ in split for a in as_}
    modified, unchanged = [], []
    for a_id in sorted(area_a):
        if a_id in used_a or a_id not in best:
            continue
        iou, b_id = best[a_id]
        if iou < match_iou or b_id in used_b:
            continue
        used_a.add(a_id)
        used_b.add(b_id)
        if iou == 1.0:
            unchanged.append(a_id)
        else:
            modified.append((b_id, a_id))
    added = tuple(a for a in sorted(area_a) if a not in used_a)
    deleted = tuple(b for b in sorted(area_b) if b not in used_b)
    return Corrections(added, deleted, tuple(modified), merged, split, tuple(unchanged))
