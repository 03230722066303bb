#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite; pytest-xvfb gives napari a virtual X server.
# Extra arguments go to pytest. The exit code is pytest's own (5 = no tests is a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The store's tests run on SQLite and on PostgreSQL (CELLIST_TEST_POSTGRES_URL): start a local
# server when none is given (scripts/postgres.sh); without one they are skipped, or fail with CI=true.
if [ -z "${CELLIST_TEST_POSTGRES_URL:-}" ]; then
    if CELLIST_TEST_POSTGRES_URL="$(bash scripts/postgres.sh)"; then
        export CELLIST_TEST_POSTGRES_URL
    else
        echo "[test] no PostgreSQL server: the store's PostgreSQL tests cannot run" >&2
    fi
fi
.venv/bin/python -m ruff check src tests benchmarks examples
.venv/bin/python -m ruff format --check src tests benchmarks examples
exec .venv/bin/python -m pytest "$@"
