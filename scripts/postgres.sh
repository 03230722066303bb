#!/usr/bin/env bash
# A local PostgreSQL server for the store's tests: installs Debian's `postgresql` when missing,
# starts its cluster on 127.0.0.1 (port 5432 unless PGPORT is set), creates the role and database
# `cellist_test` (password `cellist_test`) when missing, and prints the SQLAlchemy URL on stdout:
#
#     export CELLIST_TEST_POSTGRES_URL="$(bash scripts/postgres.sh)"
#
# Idempotent and fast when everything is already there. Needs root or sudo for apt and for the
# `postgres` system user. Messages go to stderr.
set -euo pipefail

ROLE=cellist_test
PASSWORD=cellist_test
DATABASE=cellist_test
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

log() { echo "[postgres] $*" >&2; }

server_version() {
    ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1
}

if [ -z "$(server_version)" ] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "apt-get install postgresql"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        postgresql >/dev/null
fi
VERSION="$(server_version)"
PORT="${PGPORT:-5432}"

if ! pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -qx "$VERSION main"; then
    log "creating cluster $VERSION/main"
    $SUDO pg_createcluster "$VERSION" main -p "$PORT" >&2
fi
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    log "starting cluster $VERSION/main"
    $SUDO pg_ctlcluster "$VERSION" main start >&2
fi
PORT="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')"

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        sudo -u postgres "$@"
    fi
}
psql_admin() { as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -qAt "$@"; }

for _ in $(seq 1 30); do  # the server accepts connections a moment after it started
    psql_admin -c "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.5
done
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
    log "creating role $ROLE"
    psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != "1" ]; then
    log "creating database $DATABASE"
    psql_admin -c "CREATE DATABASE $DATABASE OWNER $ROLE" >&2
fi
echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
