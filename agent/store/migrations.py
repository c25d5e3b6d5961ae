"""Versioned schema migrations: an ordered list of steps, each applied once in its own transaction.

Why not `create_all` on every start: a deployed database outlives the code that made it. Each step here is the
exact change from the previous version, recorded in `schema_migrations`, so an old database is brought forward
step by step and a database written by *newer* code is refused instead of silently misread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from agent.store import schema, schema_v1

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sa.Connection], None]


def _create_initial_tables(conn: sa.Connection) -> None:
    # The frozen version-1 DDL, not the live schema module: later columns arrive through their own steps.
    for table in schema_v1.TABLES:
        table.create(conn, checkfirst=True)


def _index_events_by_task(conn: sa.Connection) -> None:
    # Task detail pages read one task's events in order; without this every read scans all events.
    # Plain DDL (valid on SQLite and PostgreSQL): an sa.Index object would attach itself to the shared Table.
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_task_events_task_id_id ON task_events (task_id, id)"))


def _task_warnings_and_pauses(conn: sa.Connection) -> None:
    # Plain DDL valid on SQLite and PostgreSQL; nullable so existing rows need no rewrite (read back as []).
    # Skipped for a column that exists already: databases made before version 1 was frozen (agent/store/schema_v1.py)
    # got these columns at version 1.
    existing = {column["name"] for column in sa.inspect(conn).get_columns("tasks")}
    for column in ("warnings", "pauses"):
        if column not in existing:
            conn.execute(sa.text(f"ALTER TABLE tasks ADD COLUMN {column} JSON"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "initial tables: tokens, tasks, task events, idempotency keys, episodes index", _create_initial_tables
    ),
    Migration(2, "index task events by task", _index_events_by_task),
    Migration(3, "task warnings and pause/resume history", _task_warnings_and_pauses),
)

LATEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer hearth; running old code against it could corrupt it."""


def current_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table(schema.schema_migrations.name):
        return 0
    version = conn.execute(sa.select(sa.func.max(schema.schema_migrations.c.version))).scalar()
    return int(version or 0)


def migrate(engine: sa.Engine) -> list[int]:
    """Bring the database to LATEST_VERSION; return the versions applied now (empty when already current)."""
    with engine.begin() as conn:
        schema.schema_migrations.create(conn, checkfirst=True)
    applied: list[int] = []
    with engine.connect() as conn:
        version = current_version(conn)
    if version > LATEST_VERSION:
        raise SchemaTooNew(
            f"database schema is version {version} but this hearth knows only up to {LATEST_VERSION}; upgrade hearth"
        )
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
        with engine.begin() as conn:
            migration.apply(conn)
            conn.execute(
                schema.schema_migrations.insert().values(
                    version=migration.version, name=migration.name, applied_at=time.time()
                )
            )
        logger.info("applied migration", extra={"version": migration.version, "migration": migration.name})
        applied.append(migration.version)
    return applied
