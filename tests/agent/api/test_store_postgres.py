"""The store on a real PostgreSQL server: what only a shared server database has to get right — migrations from
processes starting together, one winner for an Idempotency-Key across processes, values SQLite accepts and
PostgreSQL refuses, and restarts that leave other processes' robots alone."""

from __future__ import annotations

import concurrent.futures
import math
import subprocess

import sqlalchemy as sa

from agent.store import Store
from agent.store.migrations import LATEST_VERSION
from tests.support import PYTHON, REPO_ROOT

MIGRATE = "import sys; from agent.store import Store; Store(sys.argv[1]).close()"


def test_processes_starting_together_apply_each_migration_once(postgres_url):
    processes = [
        subprocess.Popen([PYTHON, "-c", MIGRATE, postgres_url], cwd=REPO_ROOT, stderr=subprocess.PIPE) for _ in range(3)
    ]
    for process in processes:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
    store = Store(postgres_url)
    assert store.applied_migrations == []
    with store.engine.connect() as conn:
        versions = [r[0] for r in conn.execute(sa.text("SELECT version FROM schema_migrations ORDER BY version"))]
        indexes = {
            r[0] for r in conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'task_events'"))
        }
    assert versions == list(range(1, LATEST_VERSION + 1))
    assert "ix_task_events_task_id_id" in indexes


def test_tokens_are_stored_hashed(postgres_url):
    store = Store(postgres_url)
    info, secret = store.create_token("kitchen tablet", "operator")
    with store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM api_tokens")).mappings().one()
    assert secret not in {str(v) for v in row.values()}
    assert store.verify_token(secret).id == info.id
    store.revoke_token(info.id)
    assert store.verify_token(secret) is None


def test_one_idempotency_key_has_one_winner_across_processes_pools(postgres_url):
    stores = [Store(postgres_url), Store(postgres_url)]  # two engines: two connection pools, as two processes have

    def claim(i: int):
        return stores[i % 2].claim_idempotent("tok", "same-click", "hash", f"task-{i}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(claim, range(8)))
    winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert len(winners) == 1
    assert {o for o in outcomes if o is not None} == {("hash", f"task-{winners[0]}")}
    stores[0].release_idempotent("tok", "same-click", f"task-{winners[0]}")  # the winner failed to create it
    assert stores[1].claim_idempotent("tok", "same-click", "hash", "task-retry") is None


def test_text_and_json_that_postgres_refuses_are_cleaned(postgres_url):
    store = Store(postgres_url)
    saved = store.save_task(
        {"id": "t1", "robot_id": "r1", "text": "wipe\x00 the table", "state": "failed", "reason": "bad\x00 byte"}
    )
    assert saved.text == "wipe the table" and saved.reason == "bad byte"
    store.add_event("r1", "t1", "metrics", 1.0, {"loss": math.nan, "inf": math.inf, "note": "a\x00b", "ok": 1.5})
    (event,) = store.task_events("t1")
    assert event.data == {"loss": None, "inf": None, "note": "ab", "ok": 1.5}


def test_a_restart_interrupts_only_the_robots_this_process_drives(postgres_url):
    store = Store(postgres_url)
    assert store.shared
    for task_id, robot in (("a1", "kitchen-a"), ("b1", "kitchen-b")):
        store.save_task({"id": task_id, "robot_id": robot, "text": "wipe the table", "state": "running"})
    assert store.mark_unfinished_interrupted("restarted", robot_ids=["kitchen-a"]) == ["a1"]
    assert store.get_task("b1").state.value == "running"
