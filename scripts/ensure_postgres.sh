#!/usr/bin/env bash
# The store and API tests also run on a real PostgreSQL server. This installs Debian's `postgresql` when it is
# missing (root only), starts a cluster (pg_ctlcluster; no systemd needed), creates the role and database the
# tests use, and prints their SQLAlchemy URL on stdout. Idempotent: a second run only prints the URL.
# Where PostgreSQL cannot be installed or started it prints nothing and says why on stderr; the tests then skip.
set -euo pipefail
user="${HEARTH_PG_USER:-hearth}"
password="${HEARTH_PG_PASSWORD:-hearth}"
database="${HEARTH_PG_DATABASE:-hearth_test}"

if ! command -v pg_lsclusters >/dev/null; then
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
        echo "PostgreSQL is not installed and this is not a root Debian shell: PostgreSQL tests will be skipped" >&2
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq
    timeout 900 apt-get install -y -qq postgresql >/dev/null
fi
if [ "$(id -u)" != "0" ]; then
    echo "not root: cannot start PostgreSQL or create its test role; PostgreSQL tests run only if one is reachable" >&2
    exit 0
fi

cluster=$(pg_lsclusters --no-header | head -n 1)
if [ -z "$cluster" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    pg_createcluster "$version" main >/dev/null
    cluster=$(pg_lsclusters --no-header | head -n 1)
fi
read -r version name port status _ <<<"$cluster"
if [ "$status" != "online" ]; then
    pg_ctlcluster "$version" "$name" start </dev/null >&2  # the server logs to its own file, never to our stdout
fi

as_postgres() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(as_postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != "1" ]; then
    # CREATEDB: each test gets a fresh database of its own (tests/pg.py)
    as_postgres -c "CREATE ROLE $user LOGIN CREATEDB PASSWORD '$password'"
fi
if [ "$(as_postgres -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" != "1" ]; then
    as_postgres -c "CREATE DATABASE $database OWNER $user"
fi
echo "postgresql+psycopg://$user:$password@127.0.0.1:$port/$database"
