"""Opening a store for reading only (export, eval): nothing created, read-only files readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect
from test_store_migrations import _dump, build_store

from napari_cellist.store import (
    ProjectStore,
    StoreError,
    StoreNotFoundError,
    connection,
    migrations,
)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def fill(location: str) -> tuple[int, np.ndarray]:
    labels = np.zeros((20, 20), np.int32)
    labels[2:8, 3:9] = 5
    with ProjectStore(location) as store:
        image_id = store.add_image(np.arange(400, dtype=np.uint16).reshape(20, 20)).id
        store.commit_annotations(image_id, labels, points=[[10.0, 10.0]])
        store.add_model_version("air", {"lr": 0.1})
    return image_id, labels


def test_read_only_never_creates_a_store(location):
    with pytest.raises(StoreNotFoundError, match="no napari-cellist project store.*nothing"):
        ProjectStore(location, read_only=True)
    if "://" in location:  # the server schema is still empty
        engine = create_engine(location)
        try:
            assert inspect(engine).get_table_names() == []
        finally:
            engine.dispose()
    else:
        assert not Path(location).exists()  # not even the folder


@pytest.mark.parametrize("name", ["folder", "empty_folder", "store.sqlite"])
def test_read_only_on_a_path_without_store_writes_nothing(tmp_path, name):
    (tmp_path / "empty_folder").mkdir()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(StoreNotFoundError, match=f"no napari-cellist project store at .*{name}"):
        ProjectStore(tmp_path / name, read_only=True)
    assert sorted(tmp_path.rglob("*")) == before


def test_read_only_reads_everything_and_writes_nothing(location):
    image_id, labels = fill(location)
    with ProjectStore(location, read_only=True) as store:
        assert store.read_only
        (record,) = store.images()
        np.testing.assert_array_equal(store.load_annotations(image_id)[0], labels)
        np.testing.assert_array_equal(store.load_points(image_id), [[10.0, 10.0]])
        assert store.load_pixels(record.id).shape == (20, 20)
        assert [v.name for v in store.model_versions()] == ["air"]
        assert store.current_commit(image_id).n_objects == 1
        with pytest.raises(StoreError, match="opened read-only"):
            store.add_image(np.ones((3, 3)))
        with pytest.raises(StoreError, match="opened read-only"):
            store.commit_annotations(image_id, labels)
        with pytest.raises(StoreError, match="opened read-only"):
            store.add_model_version("air", {})
    with ProjectStore(location) as store:
        assert len(store.commits()) == 1 and len(store.images()) == 1


def test_read_only_missing_project_is_not_created(location):
    fill(location)
    with pytest.raises(StoreNotFoundError, match="no project 'lab-b'.*'default'"):
        ProjectStore(location, project="lab-b", read_only=True)
    with pytest.raises(StoreNotFoundError, match=r"its projects: 'default'\)"):
        ProjectStore(location, project="lab-b", read_only=True)


@pytest.fixture
def unwritable(tmp_path, monkeypatch):
    """A store folder made read-only (root ignores modes: then os.access says so too)."""
    folder = tmp_path / "store"
    fill(str(folder))
    for path in [*folder.iterdir(), folder]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    real_access = os.access
    frozen = str(folder)

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and str(path).startswith(frozen):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(connection.os, "access", access)
    yield folder
    for path in [folder, *folder.iterdir()]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_unwritable_store_can_be_read(unwritable):
    before = snapshot(unwritable)
    with pytest.raises(StoreError, match="not writable"):
        ProjectStore(unwritable)  # for writing: refused, as before
    with ProjectStore(unwritable, read_only=True) as store:
        (record,) = store.images()
        assert store.load_annotations(record.id)[0].max() == 5
    assert snapshot(unwritable) == before  # no -wal, no -shm, nothing changed


def test_read_only_refuses_an_old_schema_without_touching_it(tmp_path):
    path = tmp_path / "cellist.sqlite"
    build_store(path, 1)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="schema version 1, older.*Open it once for writing"):
        ProjectStore(tmp_path, read_only=True)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.bak"))


def test_failed_migrations_leave_one_backup(tmp_path, monkeypatch):
    path = tmp_path / "cellist.sqlite"
    build_store(path, 1)
    original = _dump(path)

    def broken(connection):
        raise RuntimeError("power cut")

    monkeypatch.setitem(migrations.MIGRATIONS, 2, broken)
    for _ in range(3):
        with pytest.raises(RuntimeError, match="power cut"):
            ProjectStore(path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir() if "bak" in p.name) == [
        "cellist.sqlite.v1.bak"
    ]
    assert _dump(tmp_path / "cellist.sqlite.v1.bak") == original
    with ProjectStore(path) as store:
        assert store.opened_schema_version == 1
    assert sorted(p.name for p in tmp_path.iterdir() if "bak" in p.name) == [
        "cellist.sqlite.v1.bak"
    ]
