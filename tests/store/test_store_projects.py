"""Projects sharing one database (SQLite and PostgreSQL): model versions belong to a project."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import MetaData, Table, create_engine, insert, inspect, text

from napari_cellist.geometry import encode_mask
from napari_cellist.store import SCHEMA_VERSION, ProjectStore, StoreError
from napari_cellist.store.schema import Base
from napari_cellist.types import ObjectMeta

WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def blobs() -> np.ndarray:
    labels = np.zeros((16, 16), np.int32)
    labels[1:5, 1:6] = 1
    labels[8:14, 9:15] = 2
    return labels


def test_model_versions_are_scoped_per_project(location):
    with ProjectStore(location, project="lab-a") as a, ProjectStore(location, project="lab-b") as b:
        root = a.add_model_version("air", {"lr": 0.1})
        child = a.add_model_version("air", {"lr": 0.01}, parent_id=root.id)
        theirs = b.add_model_version("air", {"lr": 0.5})
        assert root.project_id == child.project_id != theirs.project_id

        assert [v.id for v in a.model_versions()] == [root.id, child.id]
        assert [v.id for v in b.model_versions("air")] == [theirs.id]
        assert a.latest_model_version("air") == child
        assert b.latest_model_version("air") == theirs
        assert [v.id for v in a.lineage(child.id)] == [root.id, child.id]

        # another project's version cannot be read, extended or used for objects
        with pytest.raises(StoreError, match=f"no model version {root.id} in project 'lab-b'"):
            b.model_version(root.id)
        with pytest.raises(StoreError, match="no model version"):
            b.add_model_version("air", {}, parent_id=child.id)
        with pytest.raises(StoreError, match="no model version"):
            b.lineage(child.id)
        image_id = b.add_image(np.ones((16, 16), np.uint8)).id
        meta = {1: ObjectMeta(1, model_version=root.id)}
        with pytest.raises(StoreError, match=rf"model versions \[{root.id}\].*'lab-b'"):
            b.commit_annotations(image_id, blobs(), meta)
        b.commit_annotations(image_id, blobs(), {1: ObjectMeta(1, model_version=theirs.id)})
        assert b.load_annotations(image_id)[1][1].model_version == theirs.id


def version_3_metadata() -> MetaData:
    """The tables of schema version 3: version 4 without ``model_versions.project_id``."""
    metadata = MetaData()
    for table in Base.metadata.sorted_tables:
        if table.name == "model_versions":
            columns = [c._copy() for c in table.columns if c.name != "project_id"]
            Table(table.name, metadata, *columns)
        else:
            table.to_metadata(metadata)
    return metadata


def engine_url(location: str) -> str:
    if "://" in location:
        return location
    Path(location).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(location) / 'cellist.sqlite'}"


def build_version_3_store(location: str, projects: list[str]) -> None:
    """A version-3 store; image ``k`` in project ``projects[k]``, objects of versions 1-4.

    Version 1 is used by objects of image 1, version 2 by image 2, version 3 by both, version 4
    (a child of 1) by none.
    """
    metadata = version_3_metadata()
    engine = create_engine(engine_url(location))
    t = metadata.tables
    rle = encode_mask(np.ones((4, 5), bool))
    boxes = {1: [1, 1, 5, 6], 2: [8, 9, 12, 14]}
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
            connection.execute(insert(t["meta"]).values(key="schema_version", value="3"))
            for k, name in enumerate(projects, start=1):
                connection.execute(insert(t["projects"]).values(id=k, name=name, created_at=WHEN))
            for k in (1, 2):
                project = min(k, len(projects))
                connection.execute(
                    insert(t["images"]).values(
                        id=k, project_id=project, name=f"img{k}", content_hash=f"h{k}",
                        shape=[16, 16], dtype="|u1", added_at=WHEN, pixels=None,
                    )
                )  # fmt: skip
            for v, parent in ((1, None), (2, None), (3, None), (4, 1)):
                connection.execute(
                    insert(t["model_versions"]).values(
                        id=v, name="air", params={}, parent_id=parent, data_used=[], metrics={},
                        created_at=WHEN,
                    )
                )  # fmt: skip
            for k, versions in ((1, (1, 3)), (2, (2, 3))):
                connection.execute(
                    insert(t["commits"]).values(
                        id=k, image_id=k, created_at=WHEN, summary={}, n_objects=2, shape=[16, 16]
                    )
                )
                for label, version in enumerate(versions, start=1):
                    connection.execute(
                        insert(t["annotations"]).values(
                            image_id=k, commit_id=k, label_id=label, class_name="cell",
                            polygon=None, rle=rle, box=boxes[label], area=20,
                            score=1.0, source="air", model_version_id=version,
                            status="accepted", committed_at=WHEN,
                        )
                    )  # fmt: skip
            if connection.dialect.name == "postgresql":  # explicit ids skip the sequences
                for name in ("projects", "images", "model_versions", "commits"):
                    connection.execute(
                        text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), 10)")
                    )
    finally:
        engine.dispose()


def test_version_3_store_gives_versions_to_the_project_that_used_them(location):
    build_version_3_store(location, ["lab-a", "lab-b"])
    with ProjectStore(location, project="lab-a") as a:
        assert a.opened_schema_version == 3
        # 1: lab-a's objects only; 3: both projects' and 4: none: shared by both, as before
        assert [(v.id, v.project_id) for v in a.model_versions()] == [
            (1, 1),
            (3, None),
            (4, None),
        ]
        new = a.add_model_version("air", {}, parent_id=4)
        assert new.project_id == 1
        assert [v.id for v in a.lineage(new.id)] == [1, 4, new.id]
    with ProjectStore(location, project="lab-b") as b:
        assert b.opened_schema_version == SCHEMA_VERSION == 5
        assert [v.id for v in b.model_versions()] == [2, 3, 4]
        labels, objects = b.load_annotations(2)
        assert labels[8:12, 9:14].min() == 2 and objects[1].model_version == 2
    engine = create_engine(engine_url(location))
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("model_versions")}
        indexes = {i["name"] for i in inspect(engine).get_indexes("model_versions")}
    finally:
        engine.dispose()
    assert "project_id" in columns and "ix_model_versions_project_id" in indexes


def test_version_3_store_of_one_project_gives_it_every_version(location):
    build_version_3_store(location, ["default"])
    with ProjectStore(location) as store:
        assert {v.project_id for v in store.model_versions()} == {1}
        assert len(store.model_versions()) == 4
    with ProjectStore(location, project="newcomer") as other:
        assert other.model_versions() == []
