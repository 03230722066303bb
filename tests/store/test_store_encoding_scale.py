"""The vectorised encoding of commits: RLEs identical to the per-object ones, label maps restored
exactly (dense, touching, holes, sparse ids, none), polygons as traced before, on both backends."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from napari_cellist._sample_data import sample_mask_path
from napari_cellist.geometry import encode_mask, polygons_from_labels
from napari_cellist.labels import diff_label_maps
from napari_cellist.store import encoding
from napari_cellist.store.rle import encode_objects, paint_objects
from napari_cellist.store.work import DraftSnapshot


def dense_map(seed: int, shape=(60, 70)) -> np.ndarray:
    """Touching objects filling most of the map (a coarse random grid, upsampled), a ring with
    a hole holding another object, ids neither sequential nor small."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 9, (shape[0] // 5 + 1, shape[1] // 7 + 1))
    labels = np.kron(coarse, np.ones((5, 7), np.int64))[: shape[0], : shape[1]]
    labels[10:30, 10:30] = 50  # a ring ...
    labels[15:25, 15:25] = 0  # ... with a hole ...
    labels[18:22, 18:22] = 51  # ... holding an object
    ids = np.r_[0, rng.choice(np.arange(1, 10**6), 60, replace=False)]
    return ids[labels].astype(np.int64) if seed % 2 else ids[labels].astype(np.int32)


def per_object_rles(labels: np.ndarray) -> dict[int, dict]:
    """What the store wrote before (one encode_mask per object's box crop)."""
    small, ids = encoding.compact(labels)
    found = encode_objects(small)
    out = {}
    for k, index in enumerate(found.index.tolist()):
        box = found.box[k].tolist()
        crop = tuple(slice(box[d], box[d + labels.ndim]) for d in range(labels.ndim))
        out[int(ids[index])] = encode_mask(small[crop] == index)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rles_are_identical_to_the_per_object_encoding(seed):
    labels = dense_map(seed)
    rows = encoding.object_rows(labels)
    expected = per_object_rles(labels)
    assert [r["label_id"] for r in rows] == sorted(expected)
    for row in rows:
        assert row["rle"] == expected[row["label_id"]]
        assert row["area"] == int((labels == row["label_id"]).sum())


def test_3d_rles_and_restore():
    rng = np.random.default_rng(3)
    volume = np.kron(rng.integers(0, 5, (3, 4, 5)), np.ones((2, 3, 3), np.int32))
    volume[0, 0, 0] = 77
    small, ids = encoding.compact(volume)
    found = encode_objects(small)
    for k, index in enumerate(found.index.tolist()):
        z0, y0, x0, z1, y1, x1 = found.box[k].tolist()
        assert found.rle[k] == encode_mask(small[z0:z1, y0:y1, x0:x1] == index)
    restored = np.zeros_like(small)
    paint_objects(restored, found.index, found.box, found.rle)
    np.testing.assert_array_equal(restored, small)


def test_restore_decodes_rles_written_one_by_one():
    """Commits written before the vectorised encoding (pycocotools, one object at a time) are
    read back the same."""
    labels = dense_map(4)
    rows = [
        SimpleNamespace(
            label_id=label_id,
            rle=rle,
            box=_box(labels == label_id),
            score=1.0,
            class_name="object",
            source="manual",
            model_version_id=None,
        )
        for label_id, rle in per_object_rles(labels).items()
    ]
    restored, objects = encoding.labels_from_rows(labels.shape, rows)
    np.testing.assert_array_equal(restored, labels)
    assert set(objects) == set(np.unique(labels)) - {0}


def _box(mask: np.ndarray) -> list[int]:
    rows, cols = np.nonzero(mask)
    return [int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1]


def test_traced_polygons_match_polygons_from_labels():
    mask = tifffile.imread(sample_mask_path()).astype(np.int32)
    rows = encoding.object_rows(mask)
    expected = polygons_from_labels(mask, encoding.POLYGON_TOLERANCE)
    traced = {r["label_id"]: r["polygon"] for r in rows if r["polygon"] is not None}
    assert set(traced) == set(expected)
    for label_id, vertices in expected.items():
        np.testing.assert_array_equal(np.asarray(traced[label_id]), vertices)


@pytest.mark.parametrize("seed", [0, 1])
def test_dense_maps_round_trip_through_the_store(store, seed):
    labels = dense_map(seed)
    image_id = store.add_image(np.zeros(labels.shape, np.uint8)).id
    previous = np.where(labels % 3 == 0, 0, labels)
    result = store.commit_annotations(image_id, labels, previous=previous)
    assert result.n_objects == len(np.unique(labels)) - 1
    assert result.corrections == encoding.diff(previous, labels)
    restored, objects = store.load_annotations(image_id)
    np.testing.assert_array_equal(restored, labels)
    assert set(objects) == set(np.unique(labels).tolist()) - {0}


def test_no_objects_round_trip(store):
    image_id = store.add_image(np.zeros((20, 30), np.uint8)).id
    result = store.commit_annotations(image_id, np.zeros((20, 30), np.int32))
    assert result.n_objects == 0
    restored, objects = store.load_annotations(image_id)
    assert restored.shape == (20, 30) and not restored.any() and objects == {}


def test_commit_draft_of_a_real_mask_round_trips_with_the_same_corrections(store):
    mask = tifffile.imread(sample_mask_path()).astype(np.int32)
    image_id = store.add_image(np.zeros(mask.shape, np.uint16)).id
    prediction = np.where(np.isin(mask, np.arange(1, 126, 4)), 0, mask)
    record = store.save_prediction(image_id, prediction, model_name="threshold")
    edited = mask.copy()
    edited[edited == 5] = 6  # a merge
    store.save_draft(image_id, DraftSnapshot(edited, prediction_id=record.id))
    result = store.commit_draft(image_id)
    assert result.corrections == diff_label_maps(prediction, edited)
    np.testing.assert_array_equal(store.load_annotations(image_id)[0], edited)
    assert store.load_draft(image_id) is None
