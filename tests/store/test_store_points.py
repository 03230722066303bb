"""Committed point annotations (schema version 3): round trips, validation, migrations, samples."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from test_store_migrations import _columns, _dump, _labels, _version, build_store

from napari_cellist.store import SCHEMA_VERSION, ProjectStore, StoreError, migrations


def blobs(shape=(40, 50)) -> np.ndarray:
    labels = np.zeros(shape, np.int32)
    labels[..., 2:10, 3:12] = 1
    labels[..., 20:35, 20:45] = 2
    return labels


def add(store, shape=(40, 50)) -> int:
    return store.add_image(np.random.default_rng(len(shape)).random(shape).astype(np.float32)).id


def test_round_trip_2d(store):
    image_id = add(store)
    assert store.load_points(image_id) is None  # never committed
    points = np.array([[5.25, 7.5], [27.0, 32.125], [-0.5, 49.5], [39.5, 0.0]], np.float32)
    result = store.commit_annotations(image_id, blobs(), points=points)
    assert result.n_objects == 2
    loaded = store.load_points(image_id)
    assert loaded.dtype == np.float64 and loaded.shape == (4, 2)
    np.testing.assert_array_equal(loaded, points)
    np.testing.assert_array_equal(store.load_annotations(image_id)[0], blobs())

    store.commit_annotations(image_id, blobs())  # a commit without points: none any more
    assert store.load_points(image_id).shape == (0, 2)
    assert [c.n_objects for c in store.commits(image_id)] == [2, 2]


def test_round_trip_3d_and_channel_image(store):
    image_id = add(store, (4, 40, 50))
    points = [[0, 5.5, 7.0], [3.0, 30.0, 40.25]]  # a list, as napari hands layer data too
    store.commit_annotations(image_id, blobs((4, 40, 50)), points=points)
    np.testing.assert_array_equal(store.load_points(image_id), np.asarray(points))

    # an RGB image: points are in the label map's (spatial) dimensions
    rgb_id = store.add_image(np.zeros((40, 50, 3), np.uint8) + 1).id
    store.commit_annotations(rgb_id, blobs(), points=np.array([[39.0, 49.0]]))
    np.testing.assert_array_equal(store.load_points(rgb_id), [[39.0, 49.0]])


def test_empty_points_are_committed_as_none_marked(store):
    image_id = add(store, (4, 40, 50))
    store.commit_annotations(image_id, blobs((4, 40, 50)), points=np.zeros((0, 3)))
    assert store.load_points(image_id).shape == (0, 3)
    (sample,) = store.annotated_samples()
    assert sample.points.shape == (0, 3)  # marked "no objects", unlike a commit without points


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.array([[1.0, np.nan]]), r"Points 0 have NaN or infinite"),
        (np.array([[1.0, 2.0], [3.0, np.inf]]), r"Points 1 have NaN"),
        (np.array([[1.0, 2.0, 3.0]]), r"shape \(N, 2\).*got shape \(1, 3\)"),
        (np.array([1.0, 2.0]), r"shape \(N, 2\)"),
        (np.array([[40.0, 3.0]]), r"Points 0 lie outside the image of spatial shape \(40, 50\)"),
        (np.array([[1.0, -0.75], [2.0, 2.0], [3.0, 50.0]]), r"Points 0, 2 lie outside"),
        (np.array([["a", "b"]]), "numeric"),
        (np.array([[True, False]]), "numeric"),
    ],
)
def test_invalid_points_leave_earlier_commits_intact(store, bad, message):
    image_id = add(store)
    first = np.array([[5.0, 5.0]])
    store.commit_annotations(image_id, blobs(), points=first)
    with pytest.raises(ValueError, match=message) as info:
        store.commit_annotations(image_id, np.zeros((40, 50), np.int32), points=bad)
    assert not isinstance(info.value, StoreError)
    assert len(store.commits()) == 1
    np.testing.assert_array_equal(store.load_points(image_id), first)
    np.testing.assert_array_equal(store.load_annotations(image_id)[0], blobs())


def test_many_bad_points_are_summarised(store):
    image_id = add(store)
    bad = np.full((8, 2), 100.0)
    with pytest.raises(ValueError, match=r"Points 0, 1, 2, 3, 4 and 3 more lie outside"):
        store.commit_annotations(image_id, blobs(), points=bad)
    assert store.commits() == [] and store.load_points(image_id) is None


def test_annotated_samples_carry_points(store):
    labelled, counted, plain = add(store), add(store, (30, 30)), add(store, (20, 20))
    store.commit_annotations(labelled, blobs())  # masks only
    points = np.array([[3.0, 4.0], [10.5, 20.0], [29.0, 1.0]])
    store.commit_annotations(counted, np.zeros((30, 30), np.int32), points=points)  # points only
    unseen = add(store, (10, 10))

    samples = store.annotated_samples()
    assert [s.name for s in samples] == [store.image(i).name for i in (labelled, counted)]
    assert samples[0].points is None
    np.testing.assert_array_equal(samples[0].labels, blobs())
    np.testing.assert_array_equal(samples[1].points, points)
    assert samples[1].labels is None  # points only: the points do not say where nothing is

    everything = store.annotated_samples(include_unannotated=True)
    assert len(everything) == 4
    assert all(s.labels is None and s.points is None for s in everything[2:])
    assert everything[2].name == store.image(plain).name
    assert everything[3].name == store.image(unseen).name


def build_v2_store(path, checkpoint=None) -> np.ndarray:
    """A version-2 store: the version-1 one plus model_versions.checkpoint_sha256."""
    image = build_store(path, 2, checkpoint)
    connection = sqlite3.connect(path)
    connection.execute("ALTER TABLE model_versions ADD COLUMN checkpoint_sha256 VARCHAR(64)")
    connection.execute("UPDATE model_versions SET checkpoint_sha256 = 'abc' WHERE id = 1")
    connection.commit()
    connection.close()
    return image


def test_version_2_store_is_backed_up_and_migrated(tmp_path):
    path = tmp_path / "cellist.sqlite"
    image = build_v2_store(path)
    original = _dump(path)
    assert "points" not in _columns(path, "commits")

    with ProjectStore(tmp_path) as store:
        assert store.opened_schema_version == 2
        np.testing.assert_array_equal(store.load_annotations(1)[0], _labels())
        np.testing.assert_array_equal(store.load_pixels(1), image)
        assert store.load_points(1).shape == (0, 2)  # commits before version 3 had none
        assert store.model_version(1).checkpoint_sha256 == "abc"  # not recomputed
        (sample,) = store.annotated_samples()
        assert sample.points is None
        np.testing.assert_array_equal(sample.labels, _labels())
        # the migrated store takes commits with points
        store.commit_annotations(1, _labels(), points=np.array([[2.0, 3.0]]))
        np.testing.assert_array_equal(store.load_points(1), [[2.0, 3.0]])
        assert [c.n_objects for c in store.commits(1)] == [2, 2]

    assert _version(path) == str(SCHEMA_VERSION)
    assert "points" in _columns(path, "commits")
    backup = tmp_path / "cellist.sqlite.v2.bak"
    assert _dump(backup) == original and _version(backup) == "2"
    assert sorted(p.name for p in tmp_path.glob("*.bak")) == ["cellist.sqlite.v2.bak"]


def test_version_1_store_migrates_through_2_to_3(tmp_path):
    path = tmp_path / "cellist.sqlite"
    checkpoint = tmp_path / "air.pt"
    checkpoint.write_bytes(b"weights")
    build_store(path, 1, checkpoint)
    original = _dump(path)

    with ProjectStore(path) as store:
        assert store.opened_schema_version == 1
        assert store.model_version(1).checkpoint_sha256 is not None  # step 1 -> 2 ran
        assert store.load_points(1).shape == (0, 2)  # step 2 -> 3 ran
        store.commit_annotations(1, _labels(), points=[[15.5, 15.5]])
        assert store.annotated_samples()[0].points.tolist() == [[15.5, 15.5]]

    assert _version(path) == str(SCHEMA_VERSION)
    assert "checkpoint_sha256" in _columns(path, "model_versions")
    assert "points" in _columns(path, "commits")
    assert sorted(p.name for p in tmp_path.glob("*.bak")) == ["cellist.sqlite.v1.bak"]
    assert _dump(tmp_path / "cellist.sqlite.v1.bak") == original


def test_failing_last_step_rolls_back_every_step(tmp_path, monkeypatch):
    path = tmp_path / "cellist.sqlite"
    build_store(path, 1)

    def broken(connection):
        migrations.migrate_2_to_3(connection)
        raise RuntimeError("power cut")

    monkeypatch.setitem(migrations.MIGRATIONS, 2, broken)
    with pytest.raises(RuntimeError, match="power cut"):
        ProjectStore(path)
    assert _version(path) == "1"  # one transaction: step 1 -> 2 is undone as well
    assert "checkpoint_sha256" not in _columns(path, "model_versions")
    assert "points" not in _columns(path, "commits")

    monkeypatch.undo()
    with ProjectStore(path) as store:
        assert store.load_points(1).shape == (0, 2)
    assert _version(path) == str(SCHEMA_VERSION)
