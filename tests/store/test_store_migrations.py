"""Schema versions: a hand-built version-1 store is backed up and migrated; newer stores refused."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from napari_cellist.geometry import encode_mask
from napari_cellist.store import (
    SCHEMA_VERSION,
    ProjectStore,
    SchemaVersionError,
    StoreError,
    migrations,
)
from napari_cellist.store.pixels import hash_image, pack_pixels

# Version 1 of the schema, written by hand: version 2 minus model_versions.checkpoint_sha256.
V1_DDL = """
CREATE TABLE meta (key VARCHAR(64) NOT NULL PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE projects (
    id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL UNIQUE,
    created_at DATETIME NOT NULL);
CREATE TABLE images (
    id INTEGER NOT NULL PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL, path TEXT, content_hash VARCHAR(64) NOT NULL,
    shape JSON NOT NULL, dtype VARCHAR(32) NOT NULL, added_at DATETIME NOT NULL, pixels BLOB,
    CONSTRAINT uq_image_hash UNIQUE (project_id, content_hash));
CREATE TABLE commits (
    id INTEGER NOT NULL PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    created_at DATETIME NOT NULL, summary JSON NOT NULL, n_objects INTEGER NOT NULL,
    shape JSON NOT NULL);
CREATE TABLE model_versions (
    id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, params JSON NOT NULL,
    parent_id INTEGER REFERENCES model_versions (id), data_used JSON NOT NULL,
    metrics JSON NOT NULL, checkpoint_path TEXT, created_at DATETIME NOT NULL);
CREATE TABLE annotations (
    id INTEGER NOT NULL PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    commit_id INTEGER NOT NULL REFERENCES commits (id) ON DELETE CASCADE,
    label_id INTEGER NOT NULL, class_name VARCHAR(255) NOT NULL, polygon JSON, rle JSON NOT NULL,
    box JSON NOT NULL, area INTEGER NOT NULL, score FLOAT NOT NULL, source VARCHAR(255) NOT NULL,
    model_version_id INTEGER REFERENCES model_versions (id) ON DELETE SET NULL,
    status VARCHAR(16) NOT NULL, committed_at DATETIME NOT NULL);
CREATE TABLE corrections (
    id INTEGER NOT NULL PRIMARY KEY,
    commit_id INTEGER NOT NULL REFERENCES commits (id) ON DELETE CASCADE,
    kind VARCHAR(16) NOT NULL, before_ids JSON NOT NULL, after_ids JSON NOT NULL);
"""
WHEN = "2024-01-02 03:04:05.000000"


def _labels() -> np.ndarray:
    labels = np.zeros((16, 16), np.int32)
    labels[1:5, 1:6] = 4
    labels[8:14, 9:15] = 9
    return labels


def build_store(path, version: int, checkpoint=None) -> np.ndarray:
    """A store of schema ``version`` (version-1 tables) with one annotated image; its pixels."""
    image = np.arange(256, dtype=np.uint16).reshape(16, 16)
    labels = _labels()
    connection = sqlite3.connect(path)
    connection.executescript(V1_DDL)
    insert = connection.execute
    insert("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    insert("INSERT INTO projects VALUES (1, 'default', ?)", (WHEN,))
    insert(
        "INSERT INTO images VALUES (1, 1, 'cells', NULL, ?, '[16, 16]', '<u2', ?, ?)",
        (hash_image(image), WHEN, pack_pixels(image)),
    )
    insert(
        "INSERT INTO model_versions VALUES (1, 'air', '{\"lr\": 0.001}', NULL, '[\"cells\"]', "
        "'{}', ?, ?)",
        (None if checkpoint is None else str(checkpoint), WHEN),
    )
    insert(
        "INSERT INTO model_versions VALUES (2, 'air', '{}', 1, '[]', '{}', '/gone.pt', ?)", (WHEN,)
    )
    insert("INSERT INTO commits VALUES (1, 1, ?, '{\"added\": 2}', 2, '[16, 16]')", (WHEN,))
    for row_id, label_id in enumerate((4, 9), start=1):
        mask = labels == label_id
        rows, cols = np.nonzero(mask)
        box = [int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1]
        rle = encode_mask(mask[box[0] : box[2], box[1] : box[3]])
        insert(
            "INSERT INTO annotations VALUES (?, 1, 1, ?, 'nucleus', NULL, ?, ?, ?, 0.5, 'air', 1, "
            "'accepted', ?)",
            (row_id, label_id, json.dumps(rle), json.dumps(box), int(mask.sum()), WHEN),
        )
        insert("INSERT INTO corrections VALUES (?, 1, 'added', '[]', ?)", (row_id, f"[{label_id}]"))
    connection.commit()
    connection.close()
    return image


def _columns(path, table: str) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def _dump(path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return list(connection.iterdump())


def _version(path) -> str:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]


def test_version_1_store_is_backed_up_and_migrated(tmp_path):
    path = tmp_path / "cellist.sqlite"
    checkpoint = tmp_path / "air.pt"
    checkpoint.write_bytes(b"weights")
    image = build_store(path, 1, checkpoint)
    original = _dump(path)

    with ProjectStore(tmp_path) as store:
        assert store.opened_schema_version == 1
        labels, objects = store.load_annotations(1)
        np.testing.assert_array_equal(labels, _labels())
        assert objects[9].class_name == "nucleus" and objects[9].model_version == 1
        np.testing.assert_array_equal(store.load_pixels(1), image)
        versions = store.model_versions("air")
        assert versions[0].checkpoint_sha256 == hashlib.sha256(b"weights").hexdigest()
        assert versions[1].checkpoint_sha256 is None  # its file is gone
        assert [v.id for v in store.lineage(2)] == [1, 2]
        assert [c.kind for c in store.corrections(1)] == ["added", "added"]
        # the migrated store takes new work
        store.commit_annotations(1, np.zeros((16, 16), np.int32))
        assert [c.kind for c in store.corrections(1)][-2:] == ["deleted", "deleted"]

    assert _version(path) == str(SCHEMA_VERSION)
    assert "checkpoint_sha256" in _columns(path, "model_versions")
    backup = tmp_path / "cellist.sqlite.v1.bak"
    assert _dump(backup) == original  # the same database (SQLite's backup: a consistent copy)
    assert _version(backup) == "1"

    with ProjectStore(tmp_path) as store:  # already current: no second backup
        assert store.opened_schema_version == SCHEMA_VERSION
    assert sorted(p.name for p in tmp_path.glob("*.bak")) == ["cellist.sqlite.v1.bak"]


def test_failed_migration_leaves_the_store_at_its_old_version(tmp_path, monkeypatch):
    path = tmp_path / "cellist.sqlite"
    build_store(path, 1)

    def broken(connection):
        migrations.migrate_1_to_2(connection)  # the ALTER TABLE runs, then something fails
        raise RuntimeError("power cut")

    monkeypatch.setitem(migrations.MIGRATIONS, 1, broken)
    with pytest.raises(RuntimeError, match="power cut"):
        ProjectStore(path)
    assert _version(path) == "1"
    assert "checkpoint_sha256" not in _columns(path, "model_versions")

    monkeypatch.undo()
    with ProjectStore(path) as store:
        assert store.load_annotations(1) is not None
    assert _version(path) == str(SCHEMA_VERSION)


def test_newer_store_is_refused_and_not_modified(tmp_path):
    path = tmp_path / "future.sqlite"
    build_store(path, 99)
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError, match="newer napari-cellist.*Upgrade") as info:
        ProjectStore(path)
    assert isinstance(info.value, StoreError) and isinstance(info.value, ValueError)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.bak"))


def test_new_store_records_the_current_version(tmp_path):
    ProjectStore(tmp_path).close()
    assert _version(tmp_path / "cellist.sqlite") == str(SCHEMA_VERSION)
    assert SCHEMA_VERSION == 5 and set(migrations.MIGRATIONS) == {1, 2, 3, 4}
