"""Store fixtures: every test that takes ``location`` or ``store`` runs on SQLite and PostgreSQL.

PostgreSQL is the server named by ``CELLIST_TEST_POSTGRES_URL`` (``.ci/run`` and
``scripts/test.sh`` start one with ``scripts/postgres.sh``). Each test gets a schema of its own
there (``search_path``), dropped afterwards. Without the variable the PostgreSQL runs are
skipped locally, and FAIL when ``CI=true``: CI must test the team store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text

from napari_cellist.store import ProjectStore

POSTGRES_ENV = "CELLIST_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


def postgres_url() -> str:
    """The test server's URL; fails in CI, skips elsewhere, when it is not configured."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if url:
        return url
    message = (
        f"{POSTGRES_ENV} is not set, so the store's PostgreSQL tests cannot run. Start a server "
        f'with `export {POSTGRES_ENV}="$(bash scripts/postgres.sh)"` (as .ci/run does).'
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_admin():
    """An engine on the test database (outside any per-test schema)."""
    engine = create_engine(postgres_url(), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def schema_url(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to ``schema``."""
    return (
        make_url(url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def pg_location(request) -> Iterator[str]:
    """URL of an empty PostgreSQL schema of this test (dropped afterwards)."""
    admin = request.getfixturevalue("postgres_admin")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema_url(os.environ[POSTGRES_ENV], schema)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The database each store test runs on."""
    return request.param


@pytest.fixture
def location(backend, tmp_path, request) -> str:
    """A new, empty store location: a folder for SQLite, a schema URL for PostgreSQL."""
    if backend == "postgresql":
        return request.getfixturevalue("pg_location")
    return str(tmp_path / "store")


@pytest.fixture
def store(location) -> Iterator[ProjectStore]:
    """An open store at ``location`` (closed afterwards)."""
    with ProjectStore(location) as opened:
        yield opened
