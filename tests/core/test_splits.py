"""The one train / validation split of annotated samples."""

import numpy as np

from napari_cellist.splits import split_validation
from napari_cellist.types import Sample


def _samples(n: int, unlabelled: int = 0) -> list[Sample]:
    image = np.zeros((4, 4), np.float32)
    labelled = [Sample(image, np.ones((4, 4), np.int32), name=f"s{i}") for i in range(n)]
    return labelled + [Sample(image, name=f"u{i}") for i in range(unlabelled)]


def test_split_keeps_the_given_order_and_drops_unlabelled_samples():
    fit, val = split_validation(_samples(10, unlabelled=3), 0.3, seed=1)
    assert len(val) == 3 and len(fit) == 7
    names = [s.name for s in fit] + [s.name for s in val]
    assert sorted(names) == sorted(f"s{i}" for i in range(10))
    assert [s.name for s in fit] == sorted((s.name for s in fit), key=lambda n: int(n[1:]))
    again = split_validation(_samples(10), 0.3, seed=1)
    assert [[s.name for s in part] for part in again] == [
        [s.name for s in part] for part in (fit, val)
    ]


def test_at_least_one_of_each_when_possible_and_none_held_out_for_zero():
    fit, val = split_validation(_samples(2), 0.01, seed=0)
    assert len(fit) == 1 and len(val) == 1
    fit, val = split_validation(_samples(2), 0.99, seed=0)
    assert len(fit) == 1 and len(val) == 1
    fit, val = split_validation(_samples(5), 0.0, seed=0)
    assert len(fit) == 5 and val == []
    assert split_validation(_samples(1), 0.5, seed=0)[1] == []


def test_kfold_deals_every_item_once_in_balanced_seeded_folds():
    from napari_cellist.splits import kfold_indices

    folds = kfold_indices(7, 3, seed=2)
    assert len(folds) == 3 and sorted(i for f in folds for i in f) == list(range(7))
    assert sorted(len(f) for f in folds) == [2, 2, 3]
    assert all(f == sorted(f) for f in folds)
    assert kfold_indices(7, 3, seed=2) == folds and kfold_indices(7, 3, seed=3) != folds
    loo = kfold_indices(3, 5, seed=0)  # fewer items than folds: leave-one-out
    assert len(loo) == 3 and sorted(i for f in loo for i in f) == [0, 1, 2]


def test_kfold_rejects_a_single_fold():
    import pytest

    from napari_cellist.splits import kfold_indices

    with pytest.raises(ValueError, match="two folds"):
        kfold_indices(5, 1, seed=0)
