"""The store queries of the learning loop, on SQLite and PostgreSQL: the current (not rejected)
model version, the prediction history and one stored prediction by id."""

from __future__ import annotations

import numpy as np

from napari_cellist.store import ProjectStore
from napari_cellist.store.versions import is_rejected
from napari_cellist.types import ObjectMeta


def _labels(n: int) -> np.ndarray:
    labels = np.zeros((16, 20), np.int32)
    for k in range(1, n + 1):
        labels[2:6, 3 * k : 3 * k + 2] = k
    return labels


def test_current_model_version_skips_rejected_ones(store):
    assert store.current_model_version("threshold") is None
    first = store.add_model_version("threshold", {"a": 1})  # outside the loop: accepted
    assert store.current_model_version("threshold") == first
    kept = store.add_model_version("threshold", {}, first.id, metrics={"loop": {"accepted": True}})
    rejected = store.add_model_version(
        "threshold", {}, kept.id, metrics={"loop": {"accepted": False, "score": 0.1}}
    )
    store.add_model_version("air", {}, metrics={"loop": {"accepted": False}})
    assert store.current_model_version("threshold") == kept
    assert store.latest_model_version("threshold") == rejected
    assert is_rejected(rejected.metrics) and not is_rejected(kept.metrics)
    assert not is_rejected(first.metrics) and not is_rejected(None)
    assert store.current_model_version("air") is None


def test_prediction_history_and_loading_one(store, location):
    images = [store.add_image(np.full((16, 20), k, np.uint8), name=f"i{k}").id for k in range(2)]
    version = store.add_model_version("threshold", {}).id
    objects = {1: ObjectMeta(1, score=0.4)}
    first = store.save_prediction(images[0], _labels(1), objects, "threshold", version)
    second = store.save_prediction(images[1], _labels(2), {}, "air")
    third = store.save_prediction(images[0], _labels(3), {}, "threshold -> air")
    history = store.prediction_history()
    assert [p.id for p in history] == [first.id, second.id, third.id]
    assert [(p.image_id, p.model_name, p.model_version) for p in history] == [
        (images[0], "threshold", version),
        (images[1], "air", None),
        (images[0], "threshold -> air", None),
    ]
    record, labels, loaded = store.load_prediction_by_id(first.id)  # not the image's newest
    assert record == first and loaded[1].score == 0.4
    np.testing.assert_array_equal(labels, _labels(1))
    assert store.load_prediction_by_id(10_000) is None
    scores = store.prediction_objects([first.id, third.id, 10_000])
    assert set(scores) == {first.id, third.id}
    assert scores[first.id][1].score == 0.4 and scores[third.id] == {}
    with ProjectStore(location, project="other") as other:
        assert other.prediction_history() == []
        assert other.load_prediction_by_id(first.id) is None  # another project's prediction
        assert other.prediction_objects([first.id]) == {}
        assert other.current_model_version("threshold") is None
