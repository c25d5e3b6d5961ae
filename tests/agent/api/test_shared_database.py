"""Two real `hearth serve-api` processes on one PostgreSQL database: requests racing with the same
Idempotency-Key, split across both processes, create exactly one task, started once, and every request answers
with it."""

from __future__ import annotations

import concurrent.futures
import threading

import httpx
import pytest
import sqlalchemy as sa

from agent.store import Store
from tests.agent.api.conftest import ROBOT_ID, TASK
from tests.agent.api.test_restart import wait_healthy, write_deployment
from tests.support import PYTHON, free_port, spawn

pytestmark = pytest.mark.slow


def test_two_api_processes_racing_one_idempotency_key_create_one_task(tmp_path, worker_url, postgres_url):
    store = Store(postgres_url)
    _info, secret = store.create_token("automation", "automation")
    ports = [free_port(), free_port()]
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "evening-dishes"}
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", headers=headers, timeout=60) for p in ports]
    logs = [tmp_path / "api-a.log", tmp_path / "api-b.log"]
    for name in "ab":
        (tmp_path / name).mkdir()
    deployments = [write_deployment(tmp_path / name, worker_url, port) for name, port in zip("ab", ports, strict=True)]
    commands = [
        [PYTHON, "-m", "agent.cli", "serve-api", "--deployment", str(d), "--database-url", postgres_url]
        for d in deployments
    ]
    with spawn(commands[0], logs[0]) as api_a, spawn(commands[1], logs[1]) as api_b:
        wait_healthy(clients[0], api_a)
        wait_healthy(clients[1], api_b)
        start = threading.Barrier(8)

        def post(i: int) -> httpx.Response:
            start.wait()
            return clients[i % 2].post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK})

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(post, range(8)))
        assert sorted(r.status_code for r in responses) == [200] * 7 + [201], [r.text for r in responses]
        (task_id,) = {r.json()["id"] for r in responses}
        assert all(r.headers.get("idempotent-replayed") == "true" for r in responses if r.status_code == 200)
        for client in clients:  # either process answers for the task, whichever created it
            assert client.get(f"/api/v1/tasks/{task_id}").json()["id"] == task_id
        client_of_winner = clients[[r.status_code for r in responses].index(201) % 2]
        assert client_of_winner.post(f"/api/v1/tasks/{task_id}/abort").status_code == 200
    with store.engine.connect() as conn:
        tasks = conn.execute(sa.text("SELECT id FROM tasks")).scalars().all()
        keys = conn.execute(sa.text("SELECT task_id FROM idempotency_keys")).scalars().all()
        queued = conn.execute(sa.text("SELECT data FROM task_events WHERE kind = 'task_state'")).scalars().all()
    assert tasks == [task_id] and keys == [task_id]
    assert [e["state"] for e in queued].count("queued") <= 1  # submitted to one robot runtime only
    store.close()
