"""Committing and loading annotations, the corrections log, and atomic commits."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cellist._sample_data import sample_image_path, sample_mask_path
from napari_cellist.labels import diff_label_maps, merge_labels, remove_labels
from napari_cellist.store import CommitResult, StoreError, encoding
from napari_cellist.types import DEFAULT_CLASS, ObjectMeta


def blobs(shape=(40, 50)) -> np.ndarray:
    labels = np.zeros(shape, np.int32)
    labels[2:10, 3:12] = 1
    labels[15:25, 5:9] = 2
    labels[20:35, 20:45] = 3
    labels[30:33, 2:4] = 7
    return labels


def add(store, shape=(40, 50)):
    return store.add_image(np.random.default_rng(len(shape)).random(shape).astype(np.float32)).id


def test_round_trip_2d_with_metadata(store):
    image_id = add(store)
    version = store.add_model_version("threshold", {"threshold": 0.4})
    objects = {
        1: ObjectMeta(
            1, score=0.7, class_name="nucleus", source="threshold", model_version=version.id
        )
    }
    result = store.commit_annotations(image_id, blobs(), objects)
    assert isinstance(result, CommitResult) and result.n_objects == 4
    assert result.corrections.added == (1, 2, 3, 7)

    labels, loaded = store.load_annotations(image_id)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, blobs())
    assert loaded[1] == ObjectMeta(1, 0.7, "nucleus", (2, 3, 10, 12), "threshold", version.id)
    assert loaded[7] == ObjectMeta(7, 1.0, DEFAULT_CLASS, (30, 2, 33, 4), "manual", None)
    polygons = store.load_polygons(image_id)
    assert set(polygons) == {1, 2, 3, 7}
    assert polygons[3].shape[1] == 2 and polygons[3][:, 0].min() >= 19.5


def test_given_polygons_are_stored_as_given(store):
    image_id = add(store)
    square = np.array([[2.0, 3.0], [2.0, 11.0], [9.0, 11.0], [9.0, 3.0]])
    store.commit_annotations(image_id, blobs(), polygons={1: square})
    polygons = store.load_polygons(image_id)
    np.testing.assert_array_equal(polygons[1], square)
    assert set(polygons) == {1, 2, 3, 7}  # the others are traced
    with pytest.raises(ValueError, match="polygon of object 1"):
        store.commit_annotations(image_id, blobs(), polygons={1: np.zeros(4)})


def test_round_trip_3d_sparse_ids_and_rgb_image(store):
    volume = np.zeros((5, 20, 20), np.int64)
    volume[1:4, 2:8, 2:9] = 2_000_000_000
    volume[0:2, 10:15, 12:18] = 5
    image_id = add(store, (5, 20, 20))
    store.commit_annotations(image_id, volume)
    labels, objects = store.load_annotations(image_id)
    np.testing.assert_array_equal(labels, volume)
    assert objects[2_000_000_000].box == (1, 2, 2, 4, 8, 9)
    assert store.load_polygons(image_id) == {}

    rgb_id = store.add_image(np.zeros((40, 50, 3), np.uint8) + 1).id
    store.commit_annotations(rgb_id, blobs())
    np.testing.assert_array_equal(store.load_annotations(rgb_id)[0], blobs())


def test_corrections_against_previous_prediction(store):
    image_id = add(store)
    prediction = blobs()
    corrected, _ = merge_labels(prediction, [1, 2])
    corrected = remove_labels(corrected, [7])
    corrected[36:39, 40:48] = 11
    corrected[20:35, 20:45][corrected[20:35, 20:45] == 3] = 0
    corrected[20:35, 20:30] = 3
    result = store.commit_annotations(image_id, corrected, previous=prediction)
    assert result.corrections == diff_label_maps(prediction, corrected)
    logged = {(c.kind, c.before_ids, c.after_ids) for c in store.corrections(image_id)}
    assert logged == {
        ("merged", (1, 2), (1,)),
        ("deleted", (7,), ()),
        ("added", (), (11,)),
        ("modified", (3,), (3,)),
    }
    assert store.commits(image_id)[0].summary["merged"] == 1


def test_second_commit_without_prediction_diffs_against_the_first(store):
    image_id = add(store)
    store.commit_annotations(image_id, blobs())
    second = remove_labels(blobs(), [2])
    result = store.commit_annotations(image_id, second)
    assert result.corrections.deleted == (2,) and result.corrections.added == ()
    assert len(result.corrections.unchanged) == 3
    np.testing.assert_array_equal(store.load_annotations(image_id)[0], second)
    assert [c.n_objects for c in store.commits(image_id)] == [4, 3]
    assert [c.kind for c in store.corrections(image_id)] == ["added"] * 4 + ["deleted"]

    empty = store.commit_annotations(image_id, np.zeros((40, 50), np.uint8))
    assert empty.n_objects == 0 and empty.corrections.deleted == (1, 3, 7)
    labels, objects = store.load_annotations(image_id)
    assert not labels.any() and objects == {}


def test_never_committed_and_filters(store):
    first, second = add(store), add(store, (30, 30))
    assert store.load_annotations(first) is None and store.load_polygons(first) is None
    store.commit_annotations(second, blobs((30, 30)))  # object 7 lies outside
    assert store.commits(first) == [] and len(store.commits()) == 1
    assert store.corrections(first) == [] and len(store.corrections()) == 3
    with pytest.raises(StoreError, match="no image 99"):
        store.commit_annotations(99, blobs())


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((40, 51), np.int32), "spatial shape"),
        (np.zeros((40, 50), np.float32), "integer"),
        (np.full((40, 50), -1, np.int32), "0.."),
    ],
)
def test_invalid_label_map_leaves_previous_commit(store, bad, message):
    image_id = add(store)
    store.commit_annotations(image_id, blobs())
    with pytest.raises(ValueError, match=message):
        store.commit_annotations(image_id, bad)
    with pytest.raises(ValueError, match="previous label map"):
        store.commit_annotations(image_id, blobs(), previous=np.zeros((3, 3), np.int32))
    np.testing.assert_array_equal(store.load_annotations(image_id)[0], blobs())
    assert len(store.commits()) == 1


def test_failure_inside_the_transaction_rolls_everything_back(store, monkeypatch):
    image_id = add(store)
    store.commit_annotations(image_id, blobs())

    def explode(corrections):
        raise RuntimeError("disk vanished")  # after the commit row and the new annotations

    monkeypatch.setattr(encoding, "correction_rows", explode)
    with pytest.raises(RuntimeError, match="disk vanished"):
        store.commit_annotations(image_id, remove_labels(blobs(), [1, 2]))
    monkeypatch.undo()
    np.testing.assert_array_equal(store.load_annotations(image_id)[0], blobs())
    assert len(store.commits()) == 1 and len(store.corrections()) == 4

    unknown = {1: ObjectMeta(1, model_version=12345)}
    with pytest.raises(StoreError, match="model versions \\[12345\\]"):
        store.commit_annotations(image_id, blobs(), unknown)
    assert len(store.commits()) == 1


def test_real_mask_round_trip(store):
    mask = tifffile.imread(sample_mask_path())
    image = tifffile.imread(sample_image_path())
    image_id = store.add_image(image, path=sample_image_path(), store_pixels=True).id
    result = store.commit_annotations(image_id, mask)
    assert result.n_objects == 125 and len(result.corrections.added) == 125
    labels, objects = store.load_annotations(image_id)
    assert labels.dtype == np.int32 and len(objects) == 125
    np.testing.assert_array_equal(labels, mask)
    assert len(store.load_polygons(image_id)) >= 120

    (sample,) = store.annotated_samples()
    np.testing.assert_array_equal(sample.image, image)
    np.testing.assert_array_equal(sample.labels, mask)
    assert sample.name == sample_image_path().name and sample.points is None


def test_annotated_samples(store):
    annotated, plain = add(store), add(store, (30, 30))
    store.commit_annotations(annotated, blobs())
    assert [s.name for s in store.annotated_samples()] == [store.image(annotated).name]
    samples = store.annotated_samples(include_unannotated=True)
    assert len(samples) == 2 and samples[1].labels is None
    assert samples[1].image.shape == (30, 30) and store.image(plain).has_pixels
