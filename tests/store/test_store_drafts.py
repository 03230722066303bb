"""Schema version 5: predictions with their model, drafts (one per image), commit_draft, status."""

from __future__ import annotations

import sqlite3
import warnings

import numpy as np
import pytest
from test_store_migrations import _columns, _version, build_store

from napari_cellist.store import (
    SCHEMA_VERSION,
    DraftSnapshot,
    ProjectStore,
    StaleCommitError,
    StaleCommitWarning,
    StoreError,
)
from napari_cellist.types import ObjectMeta


def prediction() -> np.ndarray:
    labels = np.zeros((40, 50), np.int32)
    labels[2:10, 3:12] = 1
    labels[20:35, 20:45] = 2
    labels[12:18, 30:38] = 3
    return labels


def corrected() -> np.ndarray:
    """The prediction with object 3 deleted, object 1 grown and object 7 drawn."""
    labels = prediction()
    labels[labels == 3] = 0
    labels[2:12, 3:12] = 1
    labels[30:38, 2:8] = 7
    return labels


def add(store) -> int:
    return store.add_image(np.random.default_rng(0).random((40, 50)).astype(np.float32)).id


def test_prediction_round_trip_with_its_model(store):
    image_id = add(store)
    assert store.latest_prediction(image_id) is None and store.load_prediction(image_id) is None
    version = store.add_model_version("threshold", {"offset": 0.1}).id
    objects = {1: ObjectMeta(1, score=0.25, class_name="nucleus")}
    store.save_prediction(image_id, prediction(), objects, "threshold", version)
    record, labels, found = store.load_prediction(image_id)
    np.testing.assert_array_equal(labels, prediction())
    assert labels.dtype == np.int32
    assert (record.model_name, record.model_version, record.n_objects) == ("threshold", version, 3)
    assert found[1].score == 0.25 and found[1].class_name == "nucleus"
    assert found[1].source == "threshold" and found[1].model_version == version
    newer = store.save_prediction(image_id, corrected(), model_name="air")
    assert store.latest_prediction(image_id) == newer  # the newest is the current one
    with pytest.raises(StoreError, match="no model version 999"):
        store.save_prediction(image_id, prediction(), model_version=999)
    with pytest.raises(ValueError, match="shape"):
        store.save_prediction(image_id, np.zeros((5, 5), np.int32))


def test_draft_round_trip_and_replacement(store):
    image_id = add(store)
    assert store.draft(image_id) is None and store.load_draft(image_id) is None
    polygons = {1: np.array([[2.0, 3.0], [2.0, 11.0], [9.0, 11.0], [9.0, 3.0]])}
    points = np.array([[5.0, 6.5], [30.0, 40.0]])
    snapshot = DraftSnapshot(
        corrected(), polygons, {7: "mitosis"}, points, based_on_commit=None, n_edits=3
    )
    first = store.save_draft(image_id, snapshot)
    assert (first.revision, first.n_objects, first.n_edits, first.shape) == (1, 3, 3, (40, 50))
    loaded = store.load_draft(image_id)
    np.testing.assert_array_equal(loaded.snapshot.labels, corrected())
    np.testing.assert_array_equal(loaded.snapshot.polygons[1], polygons[1])
    np.testing.assert_array_equal(loaded.snapshot.points, points)
    assert loaded.snapshot.classes == {7: "mitosis"} and loaded.record == first

    assert store.save_draft(image_id, DraftSnapshot(corrected(), n_objects=3)).n_objects == 3
    second = store.save_draft(image_id, DraftSnapshot(prediction()))  # replaces, one per image
    assert second.revision == 3 and second.updated_at >= first.updated_at
    again = store.load_draft(image_id).snapshot
    np.testing.assert_array_equal(again.labels, prediction())
    assert again.polygons is None and again.points is None and again.classes is None
    assert store.discard_draft(image_id) and store.load_draft(image_id) is None
    assert not store.discard_draft(image_id)


def test_save_drafts_is_one_transaction(store):
    first, second = add(store), store.add_image(np.ones((40, 50), np.float32)).id
    with pytest.raises(ValueError, match="shape"):  # the second is bad: neither is saved
        store.save_drafts(
            {first: DraftSnapshot(prediction()), second: DraftSnapshot(np.zeros((3, 3), np.int32))}
        )
    assert store.draft(first) is None and store.draft(second) is None
    with pytest.raises(StoreError, match="no image 999"):
        store.save_drafts({first: DraftSnapshot(prediction()), 999: DraftSnapshot(prediction())})
    assert store.draft(first) is None
    saved = store.save_drafts(
        {first: DraftSnapshot(prediction()), second: DraftSnapshot(corrected())}
    )
    assert sorted(saved) == [first, second]


def test_commit_draft_logs_corrections_against_the_prediction(store):
    image_id = add(store)
    version = store.add_model_version("threshold", {}).id
    objects = {
        i: ObjectMeta(i, score=0.5, source="threshold", model_version=version) for i in (1, 2, 3)
    }
    predicted = store.save_prediction(image_id, prediction(), objects, "threshold", version)
    points = np.array([[1.0, 1.0]])
    store.save_draft(
        image_id,
        DraftSnapshot(
            corrected(),
            classes={7: "mitosis"},
            points=points,
            prediction_id=predicted.id,
            n_edits=3,
        ),
    )
    result = store.commit_draft(image_id)
    assert result.corrections.added == (7,) and result.corrections.deleted == (3,)
    assert result.corrections.modified == ((1, 1),) and result.corrections.unchanged == (2,)
    assert not result.stale and result.n_objects == 3
    assert store.load_draft(image_id) is None  # promoted: the draft is gone
    labels, meta = store.load_annotations(image_id)
    np.testing.assert_array_equal(labels, corrected())
    assert meta[7].class_name == "mitosis" and meta[7].source == "manual"
    assert meta[2].score == 0.5 and meta[2].model_version == version
    np.testing.assert_array_equal(store.load_points(image_id), points)
    kinds = sorted(c.kind for c in store.corrections(image_id))
    assert kinds == ["added", "deleted", "modified"]
    with pytest.raises(StoreError, match="no draft"):
        store.commit_draft(image_id)


def test_commit_draft_without_prediction_diffs_to_the_last_commit(store):
    image_id = add(store)
    first = store.commit_annotations(image_id, prediction())
    store.save_draft(image_id, DraftSnapshot(corrected(), based_on_commit=first.commit_id))
    result = store.commit_draft(image_id)
    assert result.corrections.deleted == (3,) and result.corrections.added == (7,)
    assert result.replaced == first.commit_id and not result.stale


def test_stale_draft_is_reported_or_refused(store):
    image_id = add(store)
    store.save_draft(image_id, DraftSnapshot(corrected(), based_on_commit=None))
    other = store.commit_annotations(image_id, prediction())  # someone committed meanwhile
    assert store.load_draft(image_id) is None  # a commit ends the image's draft
    store.save_draft(image_id, DraftSnapshot(corrected(), based_on_commit=None))
    with pytest.raises(StaleCommitError):
        store.commit_draft(image_id, on_stale="refuse")
    assert store.load_draft(image_id) is not None  # refused: nothing changed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = store.commit_draft(image_id)
    assert result.stale and result.replaced == other.commit_id
    assert any(isinstance(w.message, StaleCommitWarning) for w in caught)


def test_commit_draft_retries_when_the_draft_changes_while_encoding(store, monkeypatch):
    image_id = add(store)
    store.save_draft(image_id, DraftSnapshot(prediction()))
    calls = []
    original = type(store)._commit_stored_draft

    def racing(self, stored, objects, on_stale):
        if not calls:  # another writer saves a newer draft while the first is encoded
            self.save_draft(image_id, DraftSnapshot(corrected()))
        calls.append(stored.record.revision)
        return original(self, stored, objects, on_stale)

    monkeypatch.setattr(type(store), "_commit_stored_draft", racing)
    store.commit_draft(image_id)
    assert calls == [1, 2]  # the first attempt saw revision 1, wrote nothing, and retried
    np.testing.assert_array_equal(store.load_annotations(image_id)[0], corrected())
    assert len(store.commits(image_id)) == 1


def test_image_statuses(store):
    new, predicted, drafted, committed = (
        store.add_image(np.full((40, 50), i, np.uint8), name=f"im{i}").id for i in range(4)
    )
    version = store.add_model_version("air", {}).id
    for image_id in (predicted, drafted, committed):
        store.save_prediction(image_id, prediction(), model_name="air", model_version=version)
    store.save_draft(drafted, DraftSnapshot(corrected(), n_edits=4))
    store.save_draft(committed, DraftSnapshot(corrected()))
    store.commit_draft(committed)
    rows = {row.image_id: row for row in store.image_statuses()}
    assert [row.name for row in store.image_statuses()] == ["im0", "im1", "im2", "im3"]
    assert (
        rows[new].status == "new" and rows[new].n_objects is None and rows[new].model_name is None
    )
    assert (rows[predicted].status, rows[predicted].n_objects) == ("predicted", 3)
    assert (rows[predicted].model_name, rows[predicted].model_version) == ("air", version)
    assert (rows[drafted].status, rows[drafted].n_corrections) == ("draft", 4)
    assert (rows[committed].status, rows[committed].n_objects) == ("committed", 3)
    assert rows[committed].n_corrections == 3  # added, deleted, modified
    assert rows[committed].last_change > rows[new].last_change


def test_read_only_store_reads_drafts_and_refuses_to_save(location):
    with ProjectStore(location) as store:
        image_id = add(store)
        store.save_draft(image_id, DraftSnapshot(prediction()))
    with ProjectStore(location, read_only=True) as store:
        assert store.image_statuses()[0].status == "draft"
        assert store.load_draft(image_id) is not None
        with pytest.raises(StoreError, match="read-only"):
            store.save_draft(image_id, DraftSnapshot(prediction()))


def test_deleting_an_image_deletes_its_draft_and_predictions(tmp_path):
    with ProjectStore(tmp_path) as store:
        image_id = add(store)
        store.save_prediction(image_id, prediction())
        store.save_draft(image_id, DraftSnapshot(prediction()))
    with sqlite3.connect(tmp_path / "cellist.sqlite") as connection:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("DELETE FROM images")
        counts = [
            connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("drafts", "predictions")
        ]
    assert counts == [0, 0]


def build_v4_store(path) -> None:
    """A version-4 store: the hand-built version-1 tables plus the columns of versions 2-4."""
    build_store(path, 1)
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE model_versions ADD COLUMN checkpoint_sha256 VARCHAR(64)")
        connection.execute("ALTER TABLE commits ADD COLUMN points JSON")
        connection.execute(
            "ALTER TABLE model_versions ADD COLUMN project_id INTEGER REFERENCES projects (id)"
        )
        connection.execute("UPDATE model_versions SET project_id = 1")
        connection.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")


def test_version_4_store_gains_predictions_and_drafts(tmp_path):
    path = tmp_path / "cellist.sqlite"
    build_v4_store(path)
    with ProjectStore(path) as store:
        assert store.opened_schema_version == 4
        (row,) = store.image_statuses()
        assert (row.status, row.n_objects, row.n_corrections) == ("committed", 2, 2)
        store.save_prediction(1, prediction()[:16, :16], model_name="threshold")
        store.save_draft(1, DraftSnapshot(corrected()[:16, :16], based_on_commit=1))
        assert store.image_statuses()[0].status == "draft"
        store.commit_draft(1)
        assert store.image_statuses()[0].status == "committed"
    assert _version(path) == str(SCHEMA_VERSION) == "5"
    assert "revision" in _columns(path, "drafts") and "model_name" in _columns(path, "predictions")
    assert _version(tmp_path / "cellist.sqlite.v4.bak") == "4"


def test_count_objects_small_and_huge_ids():
    from napari_cellist.store.work import count_objects

    labels = prediction()
    assert count_objects(labels) == 3 and count_objects(np.zeros((4, 4), np.int32)) == 0
    labels[0, 0] = 2**31 - 1  # ids too large for a bincount: np.unique
    assert count_objects(labels) == 4


def test_packed_polygons_round_trip():
    from napari_cellist.store.work import pack_polygons, unpack_polygons

    polygons = {5: np.array([[0.5, 1.0], [2.0, 3.0], [4.0, 1.0]]), 2: np.arange(8.0).reshape(4, 2)}
    found = unpack_polygons(pack_polygons(polygons))
    assert list(found) == [5, 2]
    for label_id, vertices in polygons.items():
        np.testing.assert_array_equal(found[label_id], vertices)
    assert unpack_polygons(pack_polygons({})) == {}
