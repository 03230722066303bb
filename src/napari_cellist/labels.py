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

    One pass over the pixels: each pixel where both maps hold an object gives the pair key
    ``before_id * (max after id + 1) + after_id``; a bincount (small ids) or ``np.unique``
    counts the keys.

    Returns
    -------
    pairs : np.ndarray
        int64 ``(K, 2)`` ``(before_id, after_id)`` pairs that share pixels (both non-zero),
        ascending by before id, then after id.
    overlap : np.ndarray
        int64 ``(K,)`` shared pixel counts.
    """
    if before.shape != after.shape:
        raise ValueError(f"Label maps differ in shape: {before.shape} vs {after.shape}.")
    b = before.ravel()
    a = after.ravel()
    both = (b > 0) & (a > 0)
    base = int(a.max(initial=0)) + 1
    keys = b[both].astype(np.int64) * base + a[both]
    top = (int(b.max(initial=0)) + 1) * base
    if top <= 4 * max(keys.size, 1) + 1024:
        counted = np.bincount(keys, minlength=0)
        uniq = np.flatnonzero(counted)
        counts = counted[uniq]
    else:
        uniq, counts = np.unique(keys, return_counts=True)
    pairs = np.stack([uniq // base, uniq % base], axis=1).astype(np.int64).reshape(-1, 2)
    return pairs, counts.astype(np.int64)


def _areas(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, area by id)``: the sorted ids present and an array indexed by id (ids must be
    small: the maps here are compacted first by :mod:`napari_cellist.store.encoding`, or hold
    ids up to a few times their size)."""
    counts = np.bincount(labels.ravel().astype(np.int64, copy=False))
    ids = np.flatnonzero(counts)
    return ids[ids > 0], counts


def diff_label_maps(
    before: np.ndarray, after: np.ndarray, match_iou: float = 0.3, part_fraction: float = 0.5
) -> Corrections:
    """Classify the edits that turn ``before`` into ``after``.

    Vectorised over the overlap table (:func:`overlap_table`); the rules, in order:

    * merged: an object of ``after`` holding more than ``part_fraction`` of the area of two or
      more objects of ``before``; split: the reverse;
    * the others are matched to the ``before`` object of highest IoU (the smallest id among
      equal ones); a match of IoU >= ``match_iou`` whose ``before`` object is not in a merge /
      split and not matched by a smaller ``after`` id is modified (unchanged when IoU is 1);
    * the rest of ``after`` is added, the rest of ``before`` deleted.

    Parameters
    ----------
    before, after : np.ndarray
        Integer label maps of the same shape (prediction and correction), ids >= 0.
    match_iou : float
        Minimum IoU for an object to count as the same object, modified.
    part_fraction : float
        Fraction of an object's area that must lie inside another for merge / split detection.
    """
    if before.shape != after.shape:
        raise ValueError(f"Label maps differ in shape: {before.shape} vs {after.shape}.")
    if max(int(before.max(initial=0)), int(after.max(initial=0))) > 4 * before.size + 1024:
        return _diff_sparse_ids(before, after, match_iou, part_fraction)
    pairs, shared = overlap_table(before, after)
    ids_b, area_b = _areas(before)
    ids_a, area_a = _areas(after)
    b, a = pairs[:, 0], pairs[:, 1]
    sb, sa = area_b[b], area_a[a]
    merged = _groups(a, b, shared > part_fraction * sb)  # after id -> before parts
    split = _groups(b, a, shared > part_fraction * sa)  # before id -> after parts
    used_b = np.zeros(len(area_b), bool)
    used_a = np.zeros(len(area_a), bool)
    for whole, parts in merged:
        used_a[whole] = True
        used_b[list(parts)] = True
    for whole, parts in split:
        used_b[whole] = True
        used_a[list(parts)] = True
    merged = [(parts, whole) for whole, parts in merged]
    iou = shared / (sb + sa - shared)
    order = np.lexsort((b, -iou, a))  # per after id: highest IoU first, then smallest before id
    first = order[np.r_[True, a[order][1:] != a[order][:-1]]] if len(order) else order
    best_a, best_b, best_iou = a[first], b[first], iou[first]
    ok = (~used_a[best_a]) & (best_iou >= match_iou) & (~used_b[best_b])
    best_a, best_b, best_iou = best_a[ok], best_b[ok], best_iou[ok]
    _, taken = np.unique(best_b, return_index=True)  # a before object goes to the smallest after
    taken = np.sort(taken)
    best_a, best_b, best_iou = best_a[taken], best_b[taken], best_iou[taken]
    used_a[best_a] = True
    used_b[best_b] = True
    same = best_iou == 1.0
    return Corrections(
        added=tuple(ids_a[~used_a[ids_a]].tolist()),
        deleted=tuple(ids_b[~used_b[ids_b]].tolist()),
        modified=tuple(zip(best_b[~same].tolist(), best_a[~same].tolist(), strict=True)),
        merged=tuple(merged),
        split=tuple(split),
        unchanged=tuple(best_a[same].tolist()),
    )


def _diff_sparse_ids(
    before: np.ndarray, after: np.ndarray, match_iou: float, part_fraction: float
) -> Corrections:
    """:func:`diff_label_maps` of maps with huge ids: on ids renumbered 1..N, mapped back."""
    ids_b, small_b = np.unique(before, return_inverse=True)
    ids_a, small_a = np.unique(after, return_inverse=True)
    shift_b, shift_a = int(ids_b[0] != 0), int(ids_a[0] != 0)  # keep 0 as background
    found = diff_label_maps(
        (small_b.reshape(before.shape) + shift_b),
        (small_a.reshape(after.shape) + shift_a),
        match_iou,
        part_fraction,
    )
    old_b = np.r_[[0] * shift_b, ids_b].tolist()
    old_a = np.r_[[0] * shift_a, ids_a].tolist()
    return Corrections(
        added=tuple(old_a[i] for i in found.added),
        deleted=tuple(old_b[i] for i in found.deleted),
        modified=tuple((old_b[i], old_a[j]) for i, j in found.modified),
        merged=tuple((tuple(old_b[i] for i in bs), old_a[j]) for bs, j in found.merged),
        split=tuple((old_b[i], tuple(old_a[j] for j in as_)) for i, as_ in found.split),
        unchanged=tuple(old_a[i] for i in found.unchanged),
    )


def _groups(
    key: np.ndarray, member: np.ndarray, keep: np.ndarray
) -> list[tuple[int, tuple[int, ...]]]:
    """Keys (ascending) with two or more kept members (ascending)."""
    key, member = key[keep], member[keep]
    order = np.lexsort((member, key))
    key, member = key[order], member[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else key[:0]
    sizes = np.diff(np.r_[starts, len(key)])
    found = []
    for start, size in zip(starts[sizes >= 2].tolist(), sizes[sizes >= 2].tolist(), strict=True):
        found.append((int(key[start]), tuple(member[start : start + size].tolist())))
    return found
