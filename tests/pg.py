"""PostgreSQL for tests: a fresh database per test on the server `scripts/ensure_postgres.sh` started.

`make test` runs that script and passes its URL in HEARTH_TEST_POSTGRES_URL; without it the script's default
URL is tried. Where no server answers, the tests that need one are skipped, and the reason says how to get one.
Registered as a pytest plugin in tests/conftest.py, so any test can ask for `postgres_url`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

ENV = "HEARTH_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql+psycopg://hearth:hearth@127.0.0.1:5432/hearth_test"


def server_url() -> str:
    return os.environ.get(ENV) or DEFAULT_URL


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The maintenance database's URL, once a connection worked; skip (with the reason) otherwise."""
    try:
        import psycopg  # noqa: F401
        import sqlalchemy as sa
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'hearth[postgres]' (scripts/install.sh dev does)")
    url = server_url()
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.skip(
            f"no PostgreSQL at {url} ({str(exc).splitlines()[0]}); run scripts/ensure_postgres.sh as root "
            f"(installs Debian's postgresql) or set {ENV}"
        )
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new, empty database on `server` for one test; dropped afterwards (connections closed by force)."""
    import sqlalchemy as sa

    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"hearth_t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    with fresh_database(postgres_server) as url:
        yield url
