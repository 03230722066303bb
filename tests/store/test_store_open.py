"""Opening stores: locations, and actionable errors for locations that cannot be used."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from napari_cellist.store import ProjectStore, StoreError


def test_folder_location_holds_cellist_sqlite(tmp_path):
    with ProjectStore(tmp_path) as store:
        assert store.path == tmp_path / "cellist.sqlite"
        assert store.project == "default"
    new = tmp_path / "new_project"  # no suffix, does not exist: a folder is created
    with ProjectStore(new) as store:
        assert store.path == new / "cellist.sqlite"
    assert (new / "cellist.sqlite").is_file()


def test_file_and_url_locations_reopen_the_same_store(tmp_path):
    path = tmp_path / "sub" / "team.sqlite"
    with ProjectStore(path) as store:
        record = store.add_image(np.ones((8, 8), np.uint8))
    with ProjectStore(f"sqlite:///{path}") as store:
        assert store.path == path
        assert [r.id for r in store.images()] == [record.id]


def test_sqlite_settings(tmp_path):
    with ProjectStore(tmp_path, busy_timeout_s=3) as store:
        with store._engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 3000


def test_in_memory_url():
    with ProjectStore("sqlite://") as store:
        record = store.add_image(np.zeros((4, 4)))
        assert store.image(record.id).has_pixels
        assert store.path is None


def test_close_is_idempotent_and_closed_store_refuses_work(tmp_path):
    store = ProjectStore(tmp_path)
    store.close()
    store.close()
    assert "closed" in repr(store)
    with pytest.raises(StoreError, match="closed"):
        store.images()


def test_projects_are_separate(tmp_path):
    with ProjectStore(tmp_path) as store:
        store.add_image(np.ones((4, 4)))
    with ProjectStore(tmp_path, project="other") as other:
        assert other.images() == []
        other.add_image(np.ones((4, 4)))  # same pixels, other project: a new record
        assert len(other.images()) == 1


@pytest.mark.parametrize("leaf", ["store.sqlite", "project_folder"])
def test_path_under_a_regular_file_is_refused(tmp_path, leaf):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="Cannot create the project folder .*writ"):
        ProjectStore(blocker / leaf)


def test_garbage_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "garbage.sqlite"
    data = np.random.default_rng(1).bytes(4096)
    path.write_bytes(data)
    with pytest.raises(StoreError, match="not a napari-cellist project store"):
        ProjectStore(path)
    assert path.read_bytes() == data


def test_damaged_database_is_explained(tmp_path):
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + np.random.default_rng(2).bytes(4080))
    with pytest.raises(StoreError, match="not a readable napari-cellist project store") as info:
        ProjectStore(path)
    assert str(path) in str(info.value)


def test_other_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreError, match="not a napari-cellist project store.*customers"):
        ProjectStore(path)


def test_bad_url_is_explained():
    with pytest.raises(StoreError, match="database URL"):
        ProjectStore("nosuchdialect://user@host/db")


def test_locked_store_raises_store_error(tmp_path):
    path = tmp_path / "locked.sqlite"
    ProjectStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked by another program"):
            with ProjectStore(path, busy_timeout_s=0.2) as store:
                store.add_image(np.ones((4, 4)))
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_store_locked_while_being_created_raises_store_error(tmp_path):
    path = tmp_path / "creating.sqlite"
    other = sqlite3.connect(path, isolation_level=None)  # rollback journal: readers blocked too
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked"):
            ProjectStore(path, busy_timeout_s=0.2)
    finally:
        other.execute("ROLLBACK")
        other.close()
    ProjectStore(path).close()  # usable once the lock is gone


def test_store_can_be_used_from_a_worker_thread(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ProjectStore(tmp_path) as store:
        with ThreadPoolExecutor(2) as pool:
            records = list(pool.map(store.add_image, [np.ones((4, 4)), np.zeros((4, 4))]))
        assert sorted(r.id for r in store.images()) == sorted(r.id for r in records)
