"""Where a store lives and how to connect to it.

A filesystem path means an embedded SQLite store: an existing folder, or a path without a file
suffix that does not exist yet, holds ``cellist.sqlite``; anything else is the database file. A
string containing ``://`` is a SQLAlchemy URL (``postgresql://user@host/db``, ``mysql://...``,
``sqlite:///file.sqlite``). SQLite connections get ``foreign_keys=ON``, a busy timeout and real
``BEGIN`` statements (so that schema changes are transactional too); write transactions use
``BEGIN IMMEDIATE`` so that two writers queue instead of failing half-way. A store opened
read-only is an SQLite URI (``mode=ro``, or ``immutable=1`` when it is not writable here).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .errors import StoreError, StoreNotFoundError, translate_errors

logger = logging.getLogger(__name__)

DEFAULT_FILENAME = "cellist.sqlite"
SQLITE_HEADER = b"SQLite format 3\x00"
#: Execution option read by the SQLite ``begin`` listener: "" (deferred) or "IMMEDIATE".
BEGIN_OPTION = "cellist_sqlite_begin"


def resolve_location(location: str | os.PathLike) -> tuple[URL, Path | None]:
    """The SQLAlchemy URL of a store location, and the SQLite file it names (if any).

    Raises
    ------
    StoreError
        Not a valid database URL.
    """
    if isinstance(location, str) and "://" in location:
        try:
            url = make_url(location)
        except ArgumentError as error:
            raise StoreError(
                f"{location!r} is not a valid database URL; use e.g. "
                "'postgresql://user@host/dbname' or a path to a folder or .sqlite file."
            ) from error
        database = url.database or ""
        is_file = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        is_file = is_file and not database.startswith("file:")
        return url, (Path(database).expanduser().absolute() if is_file else None)
    path = Path(location).expanduser().absolute()
    # (not "does not exist": another program may be creating the folder at this moment)
    if path.is_dir() or (not path.suffix and not path.is_file()):
        path = path / DEFAULT_FILENAME
    return URL.create("sqlite", database=str(path)), path


def check_sqlite_file(path: Path) -> None:
    """Fail early, with an actionable message, if ``path`` cannot be (or become) a store.

    Creates the parent folder when missing. Never modifies an existing file.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"Cannot create the project folder {path.parent} ({error.strerror or error}). "
            "Choose a folder you can write to."
        ) from error
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(
            f"The folder {path.parent} is not writable, so the project store {path.name} cannot "
            "be created or updated there (SQLite also writes '-wal' and '-shm' files beside it). "
            "Choose a writable folder or fix its permissions."
        )
    if path.exists():
        _check_header(path)


def _check_header(path: Path) -> None:
    """StoreError unless ``path`` is a readable file that is empty or an SQLite database."""
    if not path.is_file():
        raise StoreError(f"{path} exists but is not a file; choose a .sqlite file or a folder.")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise StoreError(
            f"Cannot read the project store {path} ({error.strerror or error}); check its "
            "permissions."
        ) from error
    if header and header != SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a napari-cellist project store (it is not an SQLite database). "
            "Choose another file name or a folder; the file was left untouched."
        )


def read_only_sqlite_url(path: Path) -> URL:
    """URL that opens the existing SQLite store ``path`` read-only, never creating anything.

    ``mode=ro`` when the file and its folder are writable by this process (others may write
    meanwhile; SQLite's locks still apply), else ``immutable=1``: a file nobody here may write is
    read without locks or ``-wal`` / ``-shm`` files, which could not be created beside it.
    (With ``mode=ro`` SQLite may leave empty ``-wal`` / ``-shm`` files beside a WAL store, as
    any reader of it does; the database itself is never created or written.)

    Raises
    ------
    StoreNotFoundError
        There is no file at ``path`` (nothing is created, not even its folder).
    StoreError
        ``path`` is not a file, cannot be read, or is not an SQLite database.
    """
    if not path.exists():
        where, detail = path, ""
        if path.name == DEFAULT_FILENAME:
            where = path.parent
            detail = f" (no {DEFAULT_FILENAME} in that folder)" if where.is_dir() else ""
        raise StoreNotFoundError(
            f"There is no napari-cellist project store at {where}{detail}; nothing was created. "
            "Check the path, or commit annotations there first."
        )
    _check_header(path)
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)
    mode = {"mode": "ro"} if writable else {"immutable": "1"}
    if not writable:
        logger.info("store %s is not writable here: reading it as immutable", path)
    return URL.create("sqlite", database="file:" + quote(str(path)), query={**mode, "uri": "true"})


def make_engine(url: URL, busy_timeout_s: float = 10.0) -> Engine:
    """Create the engine for ``url``; SQLite connections are configured by event listeners."""
    where = url.render_as_string(hide_password=True)
    is_sqlite = url.get_backend_name() == "sqlite"
    kwargs: dict = {"connect_args": {"timeout": busy_timeout_s}} if is_sqlite else {}
    try:
        engine = create_engine(url, pool_pre_ping=not is_sqlite, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise StoreError(
            f"Cannot use the database URL {where}: {error}. Install the database driver "
            "(e.g. 'pip install psycopg' for PostgreSQL, 'pip install pymysql' with a "
            "'mysql+pymysql://' URL for MySQL) or check the URL."
        ) from error
    if is_sqlite:
        _configure_sqlite(engine, busy_timeout_s)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    timeout_ms = max(0, int(busy_timeout_s * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # let the "begin" listener below emit BEGIN itself: pysqlite's implicit transactions
        # skip DDL and reads, which would make migrations and read snapshots non-atomic
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


def enable_wal(engine: Engine, where: str) -> None:
    """Switch an SQLite store to write-ahead logging (persistent; readers never block writers)."""
    with translate_errors(where):
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            cursor.close()
        finally:
            raw.close()
    if str(mode).lower() != "wal":
        logger.info("store %s: journal mode is %s (WAL not available)", where, mode)
