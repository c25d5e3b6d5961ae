"""The tables exactly as migration 1 created them, frozen: never edit this module.

Why a frozen copy: migration 1 used to create its tables from the live `agent/store/schema.py`, so a fresh database
got every later column at version 1, and the migration that adds such a column then met a column that already
existed (or, written without a check, failed). Each migration now builds on what the previous one left; a new
column goes into `schema.py` (the current shape, for queries) *and* into a new step in `migrations.py`.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
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
    sa.Column("subtasks", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(32), nullable=True),
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

TABLES = (api_tokens, tasks, task_events, idempotency_keys, episodes)
