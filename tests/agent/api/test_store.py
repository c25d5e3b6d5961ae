"""The store on a real SQLite file: migrations, hashed tokens, task persistence, crash recovery, episodes index."""

from __future__ import annotations

import sqlite3
import time

import pytest
import sqlalchemy as sa

from agent.store import NotFound, Store, StoredEpisode, hash_token
from agent.store.migrations import LATEST_VERSION, SchemaTooNew
from agent.types import Subtask, SubtaskSource, TaskState


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'hearth.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The same store tests on the embedded default and on a real PostgreSQL server (tests/pg.py)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hearth.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrations_apply_once_and_are_recorded(sqlite_url, tmp_path):
    db_url = sqlite_url
    first = Store(db_url)
    assert first.applied_migrations == list(range(1, LATEST_VERSION + 1))
    first.close()
    second = Store(db_url)
    assert second.applied_migrations == []
    rows = sqlite3.connect(tmp_path / "hearth.db").execute("SELECT version FROM schema_migrations").fetchall()
    assert sorted(r[0] for r in rows) == list(range(1, LATEST_VERSION + 1))
    indexes = {r[1] for r in sqlite3.connect(tmp_path / "hearth.db").execute("PRAGMA index_list('task_events')")}
    assert "ix_task_events_task_id_id" in indexes


def test_database_from_newer_code_is_refused(db_url):
    store = Store(db_url)
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO schema_migrations VALUES (:v, 'future', 0)"), {"v": LATEST_VERSION + 1})
    store.close()
    with pytest.raises(SchemaTooNew, match="upgrade hearth"):
        Store(db_url)


def test_tokens_are_stored_hashed_and_revocable(sqlite_url, tmp_path):
    store = Store(sqlite_url)
    info, secret = store.create_token("kitchen tablet", "operator")
    assert secret.startswith("hearth_") and len(secret) > 40
    raw = (tmp_path / "hearth.db").read_bytes() + (tmp_path / "hearth.db-wal").read_bytes()
    assert secret.encode() not in raw
    assert hash_token(secret).encode() in raw
    assert store.verify_token(secret).id == info.id
    assert store.verify_token(secret + "x") is None
    assert store.verify_token("") is None
    store.revoke_token(info.id)
    assert store.verify_token(secret) is None
    assert store.list_tokens(include_revoked=False) == []
    assert store.list_tokens()[0].revoked_at is not None
    with pytest.raises(NotFound):
        store.revoke_token("nope")


def test_task_round_trip_and_crash_recovery(db_url):
    store = Store(db_url)
    subtask = Subtask(text="pick up the cup", source=SubtaskSource.COACH)
    record = {
        "id": "t1",
        "robot_id": "r1",
        "text": "put the cup in the sink",
        "state": "running",
        "created_at": 100.0,
        "started_at": 101.0,
        "subtasks": [subtask],
        "episode_index": 3,
    }
    store.save_task(record, created_by="tok")
    store.save_task({**record, "id": "t2", "state": "succeeded", "ended_at": 150.0})
    store.save_task({**record, "id": "t3", "state": "queued"})
    store.close()

    reopened = Store(db_url)  # a new process after a crash
    interrupted = reopened.mark_unfinished_interrupted("api restarted")
    assert sorted(interrupted) == ["t1", "t3"]
    t1 = reopened.get_task("t1")
    assert t1.state is TaskState.INTERRUPTED and t1.reason == "api restarted" and t1.ended_at is not None
    assert t1.subtasks[0].text == "pick up the cup" and t1.subtasks[0].source is SubtaskSource.COACH
    assert t1.created_by == "tok" and t1.episode_index == 3
    assert reopened.get_task("t2").state is TaskState.SUCCEEDED
    assert {t.id for t in reopened.list_tasks(states=[TaskState.INTERRUPTED])} == {"t1", "t3"}
    assert [t.id for t in reopened.list_tasks(robot_id="other")] == []


def test_idempotency_records(db_url):
    store = Store(db_url)
    assert store.find_idempotent("tok", "k1") is None
    store.remember_idempotent("tok", "k1", "hash", "task-1")
    assert store.find_idempotent("tok", "k1") == ("hash", "task-1")
    assert store.find_idempotent("other-token", "k1") is None  # keys are per token
    with pytest.raises(sa.exc.IntegrityError):
        store.remember_idempotent("tok", "k1", "hash2", "task-2")
    assert store.purge_idempotency(older_than_s=3600) == 0
    time.sleep(0.01)
    assert store.purge_idempotency(older_than_s=0.001) == 1


def test_episodes_index_filters_and_soft_delete(db_url):
    store = Store(db_url)
    for index, (outcome, success) in enumerate([("succeeded", True), ("failed", False), ("aborted", None)]):
        store.save_episode(
            StoredEpisode(
                robot_id="r1",
                episode_index=index,
                root="/data/r1",
                task=f"task {index} cup",
                outcome=outcome,
                success=success,
                recorded_at=1000.0 + index,
            )
        )
    assert [e.episode_index for e in store.list_episodes()] == [2, 1, 0]
    assert [e.episode_index for e in store.list_episodes(success=True)] == [0]
    assert [e.episode_index for e in store.list_episodes(outcome="failed")] == [1]
    assert [e.episode_index for e in store.list_episodes(task="task 2")] == [2]
    assert [e.episode_index for e in store.list_episodes(since=1001.0)] == [2, 1]
    store.delete_episode("r1", 1)
    assert [e.episode_index for e in store.list_episodes()] == [2, 0]
    with pytest.raises(NotFound):
        store.get_episode("r1", 1)
    # re-indexing from disk does not bring a deleted episode back
    store.save_episode(StoredEpisode(robot_id="r1", episode_index=1, root="/data/r1", recorded_at=5.0))
    assert [e.episode_index for e in store.list_episodes()] == [2, 0]
