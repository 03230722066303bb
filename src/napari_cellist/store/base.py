"""Opening and closing a store: engine, schema check / migration, sessions, the current project."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .connection import (
    BEGIN_OPTION,
    check_sqlite_file,
    enable_wal,
    make_engine,
    read_only_sqlite_url,
    resolve_location,
)
from .errors import StoreError, StoreNotFoundError, translate_errors
from .migrations import check_schema, prepare_schema
from .schema import Project

logger = logging.getLogger(__name__)

_S = TypeVar("_S", bound="StoreBase")


class StoreBase:
    """Connection lifecycle shared by the parts of :class:`~.project.ProjectStore`.

    Parameters
    ----------
    location : str or os.PathLike
        A folder (holds ``cellist.sqlite``), an SQLite file, or a SQLAlchemy URL
        (``postgresql://user@host/db``, ``mysql+pymysql://...``, ``sqlite:///file``).
    project : str
        Name of the project to work in; created when missing.
    busy_timeout_s : float
        How long an SQLite write waits for another writer before failing with "locked".
    read_only : bool
        Open an existing store for reading only (``cellist export``, ``cellist eval``...):
        nothing is ever created (no file, folder, table or project), migrated or written, and
        a store file that is not writable here can still be read. Methods that write raise
        :class:`~.errors.StoreError`.

    Raises
    ------
    StoreError
        The location cannot be used (unwritable, not a database, locked, unreachable).
    StoreNotFoundError
        ``read_only`` and there is no store, or no such project in it (nothing was created).
    SchemaVersionError
        The store was written by a newer napari-cellist; it is left untouched.
    """

    def __init__(
        self,
        location: str | os.PathLike,
        *,
        project: str = "default",
        busy_timeout_s: float = 10.0,
        read_only: bool = False,
    ) -> None:
        url, self._path = resolve_location(location)
        self._where = str(self._path) if self._path else url.render_as_string(hide_password=True)
        self._read_only = bool(read_only)
        if self._path is not None:
            if self._read_only:
                url = read_only_sqlite_url(self._path)
            else:
                check_sqlite_file(self._path)
        self._engine = make_engine(url, busy_timeout_s)
        self._closed = False
        try:
            if self._read_only:
                self.opened_schema_version = check_schema(self._engine, self._where)
            else:
                self.opened_schema_version = prepare_schema(self._engine, self._where, self._path)
                if url.get_backend_name() == "sqlite":
                    enable_wal(self._engine, self._where)
            self._readers = sessionmaker(self._engine, expire_on_commit=False)
            immediate = self._engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            self._writers = sessionmaker(immediate, expire_on_commit=False)
            self._project_name = project
            self._project_id = (
                self._find_project(project) if self._read_only else self._ensure_project(project)
            )
        except BaseException:
            self.close()
            raise
        logger.debug(
            "opened project store %s (project %r%s)",
            self._where,
            project,
            ", read-only" if self._read_only else "",
        )

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """The SQLite file, or the database URL without its password."""
        return self._where

    @property
    def path(self) -> Path | None:
        """The SQLite file of the store, or None for a server database."""
        return self._path

    @property
    def read_only(self) -> bool:
        """True when the store was opened for reading only."""
        return self._read_only

    @property
    def project(self) -> str:
        """Name of the project this store object works in."""
        return self._project_name

    def close(self) -> None:
        """Close all connections (safe to call twice). Everything committed is already saved."""
        if not self._closed:
            self._engine.dispose()
            self._closed = True
            logger.debug("closed project store %s", self._where)

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"{type(self).__name__}({self._where!r}, project={self._project_name!r}, {state})"

    # -- sessions --------------------------------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A session in one read transaction (a consistent snapshot)."""
        self._check_open()
        with translate_errors(self._where), self._readers() as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A session in one write transaction: committed at the end, rolled back on error."""
        self._check_open()
        if self._read_only:
            raise StoreError(
                f"The project store {self._where} was opened read-only; open it without "
                "read_only=True to change it."
            )
        with translate_errors(self._where), self._writers() as session, session.begin():
            yield session

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The project store {self._where} is closed; open it again.")

    def _ensure_project(self, name: str) -> int:
        query = select(Project.id).where(Project.name == name)
        with self._read() as session:
            project_id = session.scalar(query)
        if project_id is None:
            try:
                with self._write() as session:
                    project_id = session.scalar(query)
                    if project_id is None:
                        project = Project(name=name)
                        session.add(project)
                        session.flush()
                        project_id = project.id
                        logger.info("created project %r in %s", name, self._where)
            except StoreError as error:  # a server store: another program created it meanwhile
                if not isinstance(error.__cause__, IntegrityError):
                    raise
                with self._read() as session:
                    project_id = session.scalar(query)
                if project_id is None:
                    raise
        return int(project_id)

    def _find_project(self, name: str) -> int:
        with self._read() as session:
            found = {name: pid for name, pid in session.execute(select(Project.name, Project.id))}
        if name not in found:
            listed = ", ".join(repr(n) for n in sorted(found)) or "none"
            raise StoreNotFoundError(
                f"There is no project {name!r} in the project store {self._where} (its "
                f"projects: {listed}); nothing was created."
            )
        return int(found[name])
