import numpy as np

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
