import numpy as np
import pytest

from napari_cellist.labels import (
    diff_label_maps,
    merge_labels,
    relabel_sequential,
    remove_labels,
)


def _two_squares():
    labels = np.zeros((20, 20), np.int32)
    labels[2:8, 2:8] = 1
    labels[10:18, 10:18] = 2
    return labels


def test_merge_remove_relabel():
    labels = _two_squares()
    merged, kept = merge_labels(labels, [2, 1])
    assert kept == 1 and set(np.unique(merged)) == {0, 1}
    assert set(np.unique(remove_labels(labels, [1]))) == {0, 2}
    assert set(np.unique(relabel_sequential(labels * 5))) == {0, 1, 2}


def test_diff_classifies_every_kind_of_edit():
    before = _two_squares()
    before[12:18, 2:8] = 3  # will be deleted
    before[2:8, 12:14] = 4  # will be merged with 5
    before[2:8, 14:16] = 5
    after = before.copy()
    after[after == 3] = 0  # deleted
    after[2:8, 2:9] = 1  # modified (grown)
    after[after == 5] = 4  # merged
    after[10:18, 14:18] = 6  # split 2 into 2 + 6
    after[0:2, 18:20] = 7  # added
    diff = diff_label_maps(before, after)
    assert diff.deleted == (3,)
    assert diff.modified == ((1, 1),)
    assert diff.merged == (((4, 5), 4),)
    assert diff.split == ((2, (2, 6)),)
    assert diff.added == (7,)
    assert diff.n_changes == 5


def test_diff_of_identical_maps_is_unchanged():
    labels = _two_squares()
    diff = diff_label_maps(labels, labels.copy())
    assert diff.unchanged == (1, 2) and diff.n_changes == 0


def _reference_diff(before, after, match_iou=0.3, part_fraction=0.5):
    """The per-pair Python loop diff_label_maps used before it was vectorised (the reference
    the vectorised one must reproduce exactly)."""
    from napari_cellist.geometry import areas
    from napari_cellist.labels import Corrections, overlap_table

    pairs, overlap = overlap_table(before, after)
    area_b, area_a = areas(before), areas(after)
    parents, children, best = {}, {}, {}
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
        (unchanged if iou == 1.0 else modified).append(a_id if iou == 1.0 else (b_id, a_id))
    added = tuple(a for a in sorted(area_a) if a not in used_a)
    deleted = tuple(b for b in sorted(area_b) if b not in used_b)
    return Corrections(added, deleted, tuple(modified), merged, split, tuple(unchanged))


def _edited(mask: np.ndarray, seed: int) -> np.ndarray:
    """A corrected version of a real mask: objects deleted, merged with a neighbour, split in
    two, grown, shrunk, added, and ids renumbered (not sequential). Each edit works on the
    object's box grown by a margin."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    out = mask.copy()
    boxes = ndi.find_objects(mask)
    ids = np.unique(mask)[1:]
    picks = rng.permutation(ids)[: max(10, len(ids) // 2)]
    kinds = np.arange(len(picks)) % 5
    top = int(out.max()) + 1

    def around(i):
        rows, cols = boxes[i - 1]
        return (
            slice(max(rows.start - 4, 0), rows.stop + 4),
            slice(max(cols.start - 4, 0), cols.stop + 4),
        )

    for k, (i, kind) in enumerate(zip(picks.tolist(), kinds.tolist(), strict=True)):
        crop = out[around(i)]  # a view: edits write into out
        own = crop == i
        if not own.any():
            continue  # already merged into a neighbour
        if kind == 0:  # deleted
            crop[own] = 0
        elif kind == 1:  # merged with what touches it after a dilation
            grown = ndi.binary_dilation(own, iterations=3)
            neighbours = np.unique(crop[grown & ~own & (crop > 0)])
            crop[grown & (crop == 0)] = i
            crop[np.isin(crop, neighbours) & grown] = i
        elif kind == 2:  # split along the middle row
            rows = np.flatnonzero(own.any(axis=1))
            crop[own & (np.arange(crop.shape[0])[:, None] >= rows[len(rows) // 2])] = top + k
        elif kind == 3:  # shrunk
            crop[own & ~ndi.binary_erosion(own, iterations=2)] = 0
        else:  # grown into the background
            crop[ndi.binary_dilation(own, iterations=2) & (crop == 0)] = i
    out[:6, :6] = out.max() + 1  # added
    renumber = rng.permutation(int(out.max()) + 1) * 7 + 3  # ids not sequential
    renumber[0] = 0
    return renumber[out]


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("ctc_gowt1_hela", "gowt1_t01.tif"),
        ("ctc_gowt1_hela", "hela_t13.tif"),
        ("coelho2009_u2os", "u2os_dna-0.tif"),
        ("coelho2009_nih3t3", "nih3t3_dna-0.tif"),
        ("dsb2018_stardist", "dsb2018_img2d.tif"),
    ],
)
def test_vectorised_diff_matches_the_reference_on_real_masks(read_pair, folder, name):
    _, mask = read_pair(folder, name)
    for seed in range(3):
        after = _edited(mask, seed)
        for before, corrected in ((mask, after), (after, mask)):
            found = diff_label_maps(before, corrected)
            assert found == _reference_diff(before, corrected)
            assert found.n_changes > 0
    assert diff_label_maps(mask, mask) == _reference_diff(mask, mask)


def test_diff_with_huge_ids_renumbers_and_maps_back():
    before = _two_squares()
    after = before.copy()
    after[10:18, 14:18] = 2_000_000_000  # a split part with an id far above the map's size
    big_before = np.where(before == 1, 1_500_000_000, before)
    found = diff_label_maps(big_before, after)  # no bincount over 2e9 ids
    assert found.split == ((2, (2, 2_000_000_000)),)
    assert found.unchanged == (1,) and found.n_changes == 1  # 1_500_000_000 kept as 1


def test_diff_of_empty_maps_and_all_added():
    empty = np.zeros((8, 8), np.int32)
    assert diff_label_maps(empty, empty) == _reference_diff(empty, empty)
    labels = _two_squares()[:8, :8]
    assert diff_label_maps(empty, labels).added == (1,)
    assert diff_label_maps(labels, empty).deleted == (1,)
