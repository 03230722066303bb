"""Create new stores and migrate old ones forward, one schema version at a time.

History of the schema (``meta.schema_version``):

1. First release: ``meta``, ``projects``, ``images``, ``commits``, ``annotations``,
   ``corrections`` and ``model_versions`` without a checkpoint checksum.
2. ``model_versions.checkpoint_sha256`` (nullable ``VARCHAR(64)``): the SHA-256 of the checkpoint
   file, so that a version whose checkpoint was overwritten or swapped is noticed. The migration
   adds the column and fills it for checkpoints that still exist.
3. ``commits.points`` (nullable ``JSON``): the point annotations committed with the label map,
   ``[[row, col], ...]`` or ``[[plane, row, col], ...]`` in pixels; NULL when the commit had no
   points (every commit made before version 3). A column of the commit rather than a table of
   points because points are only ever written and read as a whole with their commit (one row
   per commit, thousands of points in one value, written in the commit's transaction), nothing
   queries single points, and a :class:`~napari_cellist.types.Sample` carries them without a
   class; adding a nullable column is also the cheapest, lossless migration on every database.
   Per-point classes would need a ``points`` table in a later version.
4. ``model_versions.project_id`` (nullable, references ``projects``): model versions belong to a
   project, as images do, so that teams sharing one database see only their own. The migration
   gives every version to the store's only project; in a store of several projects, a version
   whose annotations all lie in one project goes to that project, and the others stay NULL:
   shared, seen by every project as before (nothing disappears from a project).
5. Tables ``predictions`` (each model prediction of an image with the model that made it) and
   ``drafts`` (the uncommitted edits of an image, at most one per image). New tables only: the
   migration creates them empty, older rows are untouched (an image committed before version 5
   has status ``committed``, one never committed ``new``).

Rules: a store written by a *newer* napari-cellist is refused and never modified
(:class:`~.errors.SchemaVersionError`). Before migrating an SQLite store its file is copied to
``<name>.v<old>.bak`` (with SQLite's online backup, consistent even in WAL mode), one file per
old version: a later attempt replaces it with a newer copy only when that copy passes SQLite's
``quick_check``; then all steps run in one transaction, so a failure leaves the store at its old
version. PostgreSQL has transactional DDL as well (creation and migration also take an advisory
lock there, so that two programs opening a new server store do not collide); MySQL commits each
``ALTER TABLE`` by itself, so back up a MySQL store before upgrading napari-cellist. A store
opened read-only (:func:`check_schema`) is never created nor migrated.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, select, text, update

from .connection import BEGIN_OPTION
from .errors import SchemaVersionError, StoreError, StoreNotFoundError, translate_errors
from .pixels import file_sha256
from .schema import (
    SCHEMA_VERSION,
    Annotation,
    Base,
    Commit,
    Draft,
    Image,
    Meta,
    ModelVersion,
    Prediction,
    Project,
)

logger = logging.getLogger(__name__)

VERSION_KEY = "schema_version"
#: PostgreSQL advisory lock taken while creating or migrating a store (any constant would do).
SCHEMA_LOCK_KEY = 0x63656C6C  # "cell"


def migrate_1_to_2(connection: Connection) -> None:
    """Add ``model_versions.checkpoint_sha256`` and fill it for existing checkpoint files."""
    column_type = ModelVersion.__table__.c.checkpoint_sha256.type.compile(connection.dialect)
    connection.execute(
        text(f"ALTER TABLE model_versions ADD COLUMN checkpoint_sha256 {column_type}")
    )
    rows = connection.execute(
        select(ModelVersion.id, ModelVersion.checkpoint_path).where(
            ModelVersion.checkpoint_path.is_not(None)
        )
    ).all()
    for version_id, checkpoint in rows:
        digest = file_sha256(checkpoint)
        if digest is not None:
            connection.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id)
                .values(checkpoint_sha256=digest)
            )


def migrate_2_to_3(connection: Connection) -> None:
    """Add the nullable ``commits.points``; earlier commits had no points (NULL)."""
    column_type = Commit.__table__.c.points.type.compile(connection.dialect)
    connection.execute(text(f"ALTER TABLE commits ADD COLUMN points {column_type}"))


def migrate_3_to_4(connection: Connection) -> None:
    """Add ``model_versions.project_id`` and give each version the project it was used in."""
    table = ModelVersion.__table__
    column_type = table.c.project_id.type.compile(connection.dialect)
    connection.execute(
        text(
            f"ALTER TABLE model_versions ADD COLUMN project_id {column_type} "
            "REFERENCES projects (id) ON DELETE CASCADE"
        )
    )
    next(i for i in table.indexes if i.name == "ix_model_versions_project_id").create(connection)
    projects = connection.execute(select(Project.id)).scalars().all()
    if len(projects) == 1:
        connection.execute(update(ModelVersion).values(project_id=projects[0]))
        return
    owners: dict[int, set[int]] = defaultdict(set)
    used = (
        select(Annotation.model_version_id, Image.project_id)
        .join(Image, Annotation.image_id == Image.id)
        .where(Annotation.model_version_id.is_not(None))
        .distinct()
    )
    for version_id, project_id in connection.execute(used):
        owners[version_id].add(project_id)
    for version_id, found in owners.items():
        if len(found) == 1:
            connection.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id)
                .values(project_id=found.pop())
            )
    shared = (
        connection.execute(select(ModelVersion.id).where(ModelVersion.project_id.is_(None)))
        .scalars()
        .all()
    )
    if shared:
        logger.info("model versions %s stay shared by every project", shared)


def migrate_4_to_5(connection: Connection) -> None:
    """Create the empty ``predictions`` and ``drafts`` tables (with their indexes)."""
    Base.metadata.create_all(connection, tables=[Prediction.__table__, Draft.__table__])


#: ``MIGRATIONS[v]`` turns a version ``v`` store into a version ``v + 1`` store.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: migrate_1_to_2,
    2: migrate_2_to_3,
    3: migrate_3_to_4,
    4: migrate_4_to_5,
}


def prepare_schema(engine: Engine, where: str, sqlite_path: Path | None) -> int:
    """Create the tables of a new store or migrate an old one to :data:`SCHEMA_VERSION`.

    Parameters
    ----------
    engine : Engine
        Engine of the store.
    where : str
        Store location for messages (no password).
    sqlite_path : Path or None
        The SQLite file, backed up before a migration; None for server databases.

    Returns
    -------
    int
        The schema version the store had when opened (0 for a new store).

    Raises
    ------
    SchemaVersionError
        The store is newer than this napari-cellist.
    StoreError
        The database holds other tables than a napari-cellist store, or cannot be used.
    """
    tables, found = _inspect(engine, where)
    if not tables:
        _create(engine, where)
        return 0
    _check_is_store(tables, found, where)
    _check_not_newer(found, where)
    if found < SCHEMA_VERSION:
        if sqlite_path is not None:
            backup_sqlite(sqlite_path, found)
        else:
            logger.warning("migrating %s from schema %d without a file backup", where, found)
        _migrate(engine, where)
    return found


def check_schema(engine: Engine, where: str) -> int:
    """The schema version of an existing, current store; for stores opened read-only.

    Never creates, migrates or otherwise writes anything.

    Raises
    ------
    StoreNotFoundError
        The database is empty (no store there).
    SchemaVersionError
        The store is newer than this napari-cellist.
    StoreError
        Not a napari-cellist store, or one of an older schema (it must be upgraded by opening
        it for writing once).
    """
    tables, found = _inspect(engine, where)
    if not tables:
        raise StoreNotFoundError(
            f"There is no napari-cellist project store at {where} (the database is empty); "
            "nothing was created. Check the location, or commit annotations there first."
        )
    _check_is_store(tables, found, where)
    _check_not_newer(found, where)
    if found < SCHEMA_VERSION:
        raise StoreError(
            f"The project store {where} has schema version {found}, older than this "
            f"napari-cellist's {SCHEMA_VERSION}, and was opened read-only, so it cannot be "
            "upgraded. Open it once for writing (e.g. in napari, or with `cellist` commands "
            "that add to it) to upgrade it; an SQLite store is backed up first."
        )
    return found


def backup_sqlite(path: Path, version: int) -> Path:
    """Copy the SQLite store ``path`` to ``<name>.v<version>.bak``: one backup per version.

    A backup of that version already there is replaced (atomically) by the new copy only when
    the new copy passes ``PRAGMA quick_check``, so that repeated attempts leave one file and a
    damaged store never replaces a good backup.
    """
    target = path.with_name(f"{path.name}.v{version}.bak")
    # a name of its own: two programs may upgrade the same store at once
    partial = path.with_name(f"{target.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(partial)) as copy:
            source.backup(copy)
            healthy = copy.execute("PRAGMA quick_check").fetchone() == ("ok",)
        if target.exists() and not healthy:
            partial.unlink()
            logger.warning(
                "%s fails SQLite's quick_check; kept the earlier backup %s", path, target
            )
            return target
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as error:
        partial.unlink(missing_ok=True)
        raise StoreError(
            f"Could not back up {path} to {target} before upgrading it ({error}); the store "
            "was not changed. Free disk space or make the folder writable and open it again."
        ) from error
    logger.info("backed up %s (schema %d) to %s", path, version, target)
    return target


def _inspect(engine: Engine, where: str) -> tuple[set[str], int | None]:
    """The tables of the database and the store's schema version (None without one)."""
    with translate_errors(where), engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        found = _read_version(connection) if "meta" in tables else None
    return tables, found


def _check_is_store(tables: set[str], found: int | None, where: str) -> None:
    if found is None:
        raise StoreError(
            f"{where} is a database but not a napari-cellist project store (it holds the tables "
            f"{', '.join(sorted(tables))}). Choose another file, folder or database."
        )


def _lock_schema(connection: Connection) -> None:
    """On PostgreSQL, wait for any other program creating or migrating a store there."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


def _create(engine: Engine, where: str) -> None:
    immediate = engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
    with translate_errors(where), immediate.begin() as connection:
        _lock_schema(connection)
        Base.metadata.create_all(connection)
        if _read_version(connection) is None:  # another process may have created it meanwhile
            connection.execute(
                Meta.__table__.insert().values(key=VERSION_KEY, value=str(SCHEMA_VERSION))
            )
    logger.info("created project store %s (schema %d)", where, SCHEMA_VERSION)


def _migrate(engine: Engine, where: str) -> None:
    immediate = engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
    with translate_errors(where), immediate.begin() as connection:
        _lock_schema(connection)
        # take the write lock before re-reading: another process may have migrated meanwhile
        connection.execute(update(Meta).where(Meta.key == VERSION_KEY).values(value=Meta.value))
        version = start = _read_version(connection) or 0
        _check_not_newer(version, where)
        while version < SCHEMA_VERSION:
            logger.info("migrating %s from schema %d to %d", where, version, version + 1)
            MIGRATIONS[version](connection)
            version += 1
        connection.execute(
            update(Meta).where(Meta.key == VERSION_KEY).values(value=str(SCHEMA_VERSION))
        )
    if start < SCHEMA_VERSION:
        logger.info("migrated %s from schema %d to %d", where, start, SCHEMA_VERSION)


def _read_version(connection: Connection) -> int | None:
    value = connection.execute(select(Meta.value).where(Meta.key == VERSION_KEY)).scalar()
    try:
        return None if value is None else int(value)
    except ValueError as error:
        raise StoreError(f"The store's schema version {value!r} is not a number.") from error


def _check_not_newer(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"The project store {where} has schema version {version}, written by a newer "
            f"napari-cellist (this one reads up to version {SCHEMA_VERSION}). Upgrade "
            "napari-cellist ('pip install -U napari-cellist') to open it; it was not modified."
        )
