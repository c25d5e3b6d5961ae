"""The persistent store behind the API: tokens, tasks, task events, idempotency keys and the episodes index.

One `Store` per process, safe to share between threads (the API's request threads and the event bridge).
SQLite is the default (a file under runs/); PostgreSQL (`postgresql+psycopg://user:pass@host/db`, the `postgres`
extra) lets several API processes share one database. What makes that safe is in the database, not in a process:
- migrations run under a PostgreSQL advisory lock, so processes starting together apply each step once;
- an Idempotency-Key is claimed by inserting its row *before* the task is submitted (the primary key decides the
  race), so two processes given the same key create one task and the loser replays the winner's;
- text and JSON are cleaned of what PostgreSQL refuses and SQLite accepts (NUL characters, NaN/Infinity).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agent.store import schema
from agent.store.migrations import migrate
from agent.store.records import StoredEpisode, StoredEvent, StoredTask, TokenInfo
from agent.task_queue import TaskRecord
from agent.types import TERMINAL_STATES, TaskState

TOKEN_PREFIX = "hearth_"
LAST_USED_RESOLUTION_S = 60.0  # write "last used" at most once a minute per token: reads must not become writes
UNFINISHED_STATES = (TaskState.QUEUED, TaskState.RUNNING, TaskState.PAUSED)
MIGRATION_LOCK_ID = 0x6865617274  # "heart": the advisory lock every hearth process takes to migrate PostgreSQL
CLAIM_WAIT_S = 30.0  # how long a replay waits for the process that claimed its key to finish creating the task


class NotFound(LookupError):
    """The row asked for does not exist."""


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; busy_timeout: concurrent writers wait instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextlib.contextmanager
def migration_lock(engine: sa.Engine) -> Iterator[None]:
    """Serialise migrations across processes: a session advisory lock on PostgreSQL; nothing needed on SQLite,
    whose migrations are for one embedded process."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            conn.commit()


def make_engine(url: str) -> sa.Engine:
    """An engine for `url`; SQLite files get their folder created and safe concurrency settings."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        with migration_lock(self.engine):
            self.applied_migrations = migrate(self.engine)
        self._write_lock = threading.Lock()  # upserts are read-then-write; serialize them within the process

    @property
    def shared(self) -> bool:
        """True for a server database that several API processes may use at once (anything but SQLite)."""
        return self.engine.dialect.name != "sqlite"

    def close(self) -> None:
        self.engine.dispose()

    # ---- tokens -------------------------------------------------------------------------------------------
    def create_token(self, name: str, role: str) -> tuple[TokenInfo, str]:
        """Create a token; return its info and the secret, which is shown once and never stored."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(
            id=uuid.uuid4().hex[:12],
            name=name,
            role=role,
            prefix=secret[: len(TOKEN_PREFIX) + 6],
            created_at=time.time(),
        )
        with self.engine.begin() as conn:
            conn.execute(schema.api_tokens.insert().values(**info.model_dump(), token_hash=hash_token(secret)))
        return info, secret

    def list_tokens(self, include_revoked: bool = True) -> list[TokenInfo]:
        query = sa.select(schema.api_tokens).order_by(schema.api_tokens.c.created_at)
        if not include_revoked:
            query = query.where(schema.api_tokens.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_token(row) for row in conn.execute(query).mappings()]

    def get_token(self, token_id: str) -> TokenInfo:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(schema.api_tokens).where(schema.api_tokens.c.id == token_id)).mappings().first()
            )
        if row is None:
            raise NotFound(f"no token with id {token_id!r}")
        return _token(row)

    def revoke_token(self, token_id: str) -> TokenInfo:
        with self.engine.begin() as conn:
            conn.execute(
                schema.api_tokens.update()
                .where(schema.api_tokens.c.id == token_id, schema.api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return self.get_token(token_id)

    def verify_token(self, secret: str) -> TokenInfo | None:
        """The active token whose secret this is, or None. Lookup is by hash, so timing reveals nothing useful."""
        if not secret:
            return None
        table = schema.api_tokens
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.token_hash == hash_token(secret))).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        info = _token(row)
        now = time.time()
        if info.last_used_at is None or now - info.last_used_at > LAST_USED_RESOLUTION_S:
            with self.engine.begin() as conn:
                conn.execute(table.update().where(table.c.id == info.id).values(last_used_at=now))
            info.last_used_at = now
        return info

    # ---- tasks --------------------------------------------------------------------------------------------
    def save_task(self, record: TaskRecord | Mapping[str, Any], created_by: str | None = None) -> StoredTask:
        """Insert or update a task from a TaskRecord (a StoredTask is one) or a mapping of its fields."""
        data = dict(record) if isinstance(record, Mapping) else record.model_dump(mode="json")
        values = {
            "id": str(data["id"]),
            "robot_id": str(data["robot_id"]),
            "text": clean_text(str(data["text"])),
            "state": TaskState(data["state"]).value,
            "reason": None if data.get("reason") is None else clean_text(str(data["reason"])),
            "created_at": float(data.get("created_at") or time.time()),
            "started_at": data.get("started_at"),
            "ended_at": data.get("ended_at"),
            "episode_index": data.get("episode_index"),
            "outcome": data.get("outcome"),
            "success": data.get("success"),
            "episode_path": None if data.get("episode_path") is None else str(data["episode_path"]),
            "subtasks": [to_jsonable(s) for s in data.get("subtasks") or []],
            "warnings": list(data.get("warnings") or []),
            "pauses": [to_jsonable(p) for p in data.get("pauses") or []],
            "updated_at": time.time(),
        }
        table = schema.tasks
        with self._write_lock, self.engine.begin() as conn:
            existing = conn.execute(sa.select(table.c.created_by).where(table.c.id == values["id"])).first()
            if existing is None:
                conn.execute(table.insert().values(**values, created_by=created_by or data.get("created_by")))
            else:
                if created_by and existing[0] is None:
                    values["created_by"] = created_by
                conn.execute(table.update().where(table.c.id == values["id"]).values(**values))
        return self.get_task(values["id"])

    def get_task(self, task_id: str) -> StoredTask:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(schema.tasks).where(schema.tasks.c.id == task_id)).mappings().first()
        if row is None:
            raise NotFound(f"no task with id {task_id!r}")
        return StoredTask.model_validate(dict(row))

    def list_tasks(
        self,
        robot_id: str | None = None,
        states: Iterable[TaskState] = (),
        limit: int = 100,
        offset: int = 0,
    ) -> list[StoredTask]:
        table = schema.tasks
        query = sa.select(table).order_by(table.c.created_at.desc(), table.c.id).limit(limit).offset(offset)
        if robot_id is not None:
            query = query.where(table.c.robot_id == robot_id)
        state_values = [TaskState(s).value for s in states]
        if state_values:
            query = query.where(table.c.state.in_(state_values))
        with self.engine.connect() as conn:
            return [StoredTask.model_validate(dict(row)) for row in conn.execute(query).mappings()]

    def mark_unfinished_interrupted(self, reason: str, robot_ids: Iterable[str] | None = None) -> list[str]:
        """After a restart nothing is driving old tasks: mark every unfinished one interrupted, keep the row.

        `robot_ids` limits this to the robots the calling process drives: with several API processes on one
        database, one process starting or stopping must not interrupt the tasks another is running.
        """
        table = schema.tasks
        unfinished = [s.value for s in UNFINISHED_STATES]
        now = time.time()
        query = sa.select(table.c.id).where(table.c.state.in_(unfinished))
        if robot_ids is not None:
            query = query.where(table.c.robot_id.in_(list(robot_ids)))
        with self._write_lock, self.engine.begin() as conn:
            ids = [r[0] for r in conn.execute(query)]
            if ids:
                conn.execute(
                    table.update()
                    .where(table.c.id.in_(ids))
                    .values(state=TaskState.INTERRUPTED.value, reason=reason, ended_at=now, updated_at=now)
                )
        return ids

    # ---- events -------------------------------------------------------------------------------------------
    def add_event(self, robot_id: str, task_id: str | None, kind: str, ts: float, data: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                schema.task_events.insert().values(
                    robot_id=robot_id, task_id=task_id, kind=kind, ts=float(ts), data=to_jsonable(data)
                )
            )

    def task_events(self, task_id: str, limit: int = 1000) -> list[StoredEvent]:
        table = schema.task_events
        query = sa.select(table).where(table.c.task_id == task_id).order_by(table.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [StoredEvent.model_validate(dict(row)) for row in conn.execute(query).mappings()]

    # ---- idempotency --------------------------------------------------------------------------------------
    def find_idempotent(self, token_id: str, key: str) -> tuple[str, str] | None:
        """(request_hash, task_id) recorded for this token's key, or None."""
        table = schema.idempotency_keys
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(table.c.request_hash, table.c.task_id).where(table.c.token_id == token_id, table.c.key == key)
            ).first()
        return None if row is None else (row[0], row[1])

    def claim_idempotent(self, token_id: str, key: str, request_hash: str, task_id: str) -> tuple[str, str] | None:
        """Claim `key` for a task about to be created with `task_id`: None when this caller won the key (create the
        task now, or `release_idempotent` on failure); otherwise the (request_hash, task_id) it already names.

        The insert is the lock: the primary key (token_id, key) lets exactly one of any number of racing processes
        insert the row (PostgreSQL makes the others wait for the winner's commit, then refuses them).
        """
        table = schema.idempotency_keys
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    table.insert().values(
                        token_id=token_id, key=key, request_hash=request_hash, task_id=task_id, created_at=time.time()
                    )
                )
            return None
        except sa.exc.IntegrityError:
            existing = self.find_idempotent(token_id, key)
            if existing is None:  # released by a failed winner between our insert and this read: try again
                return self.claim_idempotent(token_id, key, request_hash, task_id)
            return existing

    def release_idempotent(self, token_id: str, key: str, task_id: str) -> None:
        """Give a claimed key back when creating its task failed, so a retry can create it."""
        table = schema.idempotency_keys
        with self.engine.begin() as conn:
            conn.execute(
                table.delete().where(table.c.token_id == token_id, table.c.key == key, table.c.task_id == task_id)
            )

    def wait_for_task(self, task_id: str, timeout_s: float = CLAIM_WAIT_S) -> StoredTask | None:
        """The task once its creator has saved it (a replay can arrive while the winner is still creating it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.get_task(task_id)
            except NotFound:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.05)

    def remember_idempotent(self, token_id: str, key: str, request_hash: str, task_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                schema.idempotency_keys.insert().values(
                    token_id=token_id, key=key, request_hash=request_hash, task_id=task_id, created_at=time.time()
                )
            )

    def purge_idempotency(self, older_than_s: float) -> int:
        table = schema.idempotency_keys
        with self.engine.begin() as conn:
            result = conn.execute(table.delete().where(table.c.created_at < time.time() - older_than_s))
        return int(result.rowcount or 0)

    # ---- episodes -----------------------------------------------------------------------------------------
    def save_episode(self, episode: StoredEpisode) -> StoredEpisode:
        table = schema.episodes
        values = episode.model_dump()
        key = (table.c.robot_id == episode.robot_id, table.c.episode_index == episode.episode_index)
        with self._write_lock, self.engine.begin() as conn:
            existing = conn.execute(sa.select(table.c.deleted_at).where(*key)).first()
            if existing is None:
                conn.execute(table.insert().values(**values))
            else:
                values.pop("deleted_at")  # a re-index never resurrects a deleted episode
                values.pop("recorded_at")
                conn.execute(table.update().where(*key).values(**values))
        return self.get_episode(episode.robot_id, episode.episode_index, include_deleted=True)

    def get_episode(self, robot_id: str, episode_index: int, include_deleted: bool = False) -> StoredEpisode:
        table = schema.episodes
        query = sa.select(table).where(table.c.robot_id == robot_id, table.c.episode_index == episode_index)
        if not include_deleted:
            query = query.where(table.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"no episode {episode_index} for robot {robot_id!r}")
        return StoredEpisode.model_validate(dict(row))

    def list_episodes(
        self,
        robot_id: str | None = None,
        task: str | None = None,
        outcome: str | None = None,
        success: bool | None = None,
        since: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StoredEpisode]:
        table = schema.episodes
        query = (
            sa.select(table)
            .where(table.c.deleted_at.is_(None))
            .order_by(table.c.recorded_at.desc(), table.c.robot_id, table.c.episode_index.desc())
            .limit(limit)
            .offset(offset)
        )
        if robot_id is not None:
            query = query.where(table.c.robot_id == robot_id)
        if task is not None:
            query = query.where(table.c.task.contains(task, autoescape=True))
        if outcome is not None:
            query = query.where(table.c.outcome == outcome)
        if success is not None:
            query = query.where(table.c.success.is_(success))
        if since is not None:
            query = query.where(table.c.recorded_at >= since)
        with self.engine.connect() as conn:
            return [StoredEpisode.model_validate(dict(row)) for row in conn.execute(query).mappings()]

    def delete_episode(self, robot_id: str, episode_index: int) -> StoredEpisode:
        """Hide an episode from the API (the dataset files keep it: LeRobot v3 packs many episodes per file)."""
        episode = self.get_episode(robot_id, episode_index)
        table = schema.episodes
        with self.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.robot_id == robot_id, table.c.episode_index == episode_index)
                .values(deleted_at=time.time())
            )
        return episode


def _token(row: Any) -> TokenInfo:
    return TokenInfo.model_validate({k: v for k, v in dict(row).items() if k != "token_hash"})


def clean_text(text: str) -> str:
    """Text as every engine stores it: PostgreSQL refuses NUL characters, which no task or reason needs."""
    return text.replace("\x00", "")


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for the JSON columns (pydantic models and enums included)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN/Infinity; PostgreSQL refuses them
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int | bool) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    return str(value)


__all__ = [
    "TERMINAL_STATES",
    "NotFound",
    "Store",
    "clean_text",
    "hash_token",
    "make_engine",
    "migration_lock",
    "to_jsonable",
]
