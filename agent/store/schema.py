"""The API's tables, written with SQLAlchemy Core so the same code runs on SQLite (default) and PostgreSQL.

Times are float seconds since the epoch, like the orchestrator's TaskRecord, so records round-trip unchanged.
Tables are created and changed only by agent/store/migrations.py; this module is the current shape.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    # sha256 of the whole secret: tokens are 256-bit random, so a fast hash cannot be brute-forced.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float, nullable=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("robot_id", sa.String(128), nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("episode_index", sa.Integer, nullable=True),
    sa.Column("outcome", sa.String(64), nullable=True),
    sa.Column("success", sa.Boolean, nullable=True),
    sa.Column("episode_path", sa.Text, nullable=True),
    sa.Column("subtasks", sa.JSON, nullable=False, default=list),
    sa.Column("created_by", sa.String(32), nullable=True),
    sa.Column("warnings", sa.JSON, nullable=True),  # migration 3
    sa.Column("pauses", sa.JSON, nullable=True),  # migration 3
)

task_events = sa.Table(
    "task_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("robot_id", sa.String(128), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("task_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

episodes = sa.Table(
    "episodes",
    metadata,
    sa.Column("robot_id", sa.String(128), primary_key=True),
    sa.Column("episode_index", sa.Integer, primary_key=True),
    sa.Column("root", sa.Text, nullable=False),
    sa.Column("task", sa.Text, nullable=True),
    sa.Column("task_id", sa.String(64), nullable=True),
    sa.Column("length", sa.Integer, nullable=True),
    sa.Column("outcome", sa.String(64), nullable=True),
    sa.Column("success", sa.Boolean, nullable=True),
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Column("deleted_at", sa.Float, nullable=True),
)
