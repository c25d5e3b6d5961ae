"""Migrations build every database to the live schema: a fresh one, and one left at version 1 by an older hearth.

Both compare against `agent/store/schema.py` table by table, so a column added there without its own migration
step fails here instead of on a user's database.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from agent.store import schema, schema_v1
from agent.store.migrations import LATEST_VERSION, migrate


def _columns(engine: sa.Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {name: {c["name"] for c in inspector.get_columns(name)} for name in inspector.get_table_names()}


def _live_columns() -> dict[str, set[str]]:
    return {table.name: {c.name for c in table.columns} for table in schema.metadata.sorted_tables}


def test_fresh_database_gets_exactly_the_live_schema(tmp_path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert migrate(engine) == list(range(1, LATEST_VERSION + 1))
    assert _columns(engine) == _live_columns()


def test_version_1_is_frozen_and_differs_from_the_live_schema() -> None:
    """The first added column (tasks.warnings, migration 3) is absent from v1: v1 no longer follows schema.py."""
    v1_tasks = {c.name for c in schema_v1.tasks.columns}
    assert "warnings" not in v1_tasks and "pauses" not in v1_tasks
    assert v1_tasks < {c.name for c in schema.tasks.columns}


def test_database_left_at_version_1_upgrades_and_keeps_its_rows(tmp_path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'v1.db'}")
    now = time.time()
    with engine.begin() as conn:  # what hearth at version 1 left behind: the v1 tables, one task, one event
        schema.schema_migrations.create(conn)
        schema_v1.metadata.create_all(conn)
        conn.execute(schema.schema_migrations.insert().values(version=1, name="initial tables", applied_at=now))
        conn.execute(
            schema_v1.tasks.insert().values(
                id="t1",
                robot_id="r1",
                text="wipe the table",
                state="succeeded",
                created_at=now,
                updated_at=now,
                subtasks=["wipe"],
            )
        )
        conn.execute(schema_v1.task_events.insert().values(robot_id="r1", task_id="t1", kind="done", ts=now, data={}))

    assert migrate(engine) == list(range(2, LATEST_VERSION + 1))
    assert _columns(engine) == _live_columns()
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema.tasks).where(schema.tasks.c.id == "t1")).mappings().one()
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("task_events")}
    assert (row["text"], row["subtasks"], row["warnings"], row["pauses"]) == ("wipe the table", ["wipe"], None, None)
    assert "ix_task_events_task_id_id" in indexes
