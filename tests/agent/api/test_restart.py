"""Restart the real `hearth serve-api` process (SIGKILL, then SIGTERM) and find tasks, events, tokens and
episodes intact; tasks that were running are marked interrupted, never lost."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
import yaml

from agent.store import Store
from tests.agent.api.conftest import ROBOT_ID, TASK
from tests.support import PYTHON, free_port, spawn, wait_until

pytestmark = pytest.mark.slow


def write_deployment(tmp_path: Path, worker_url: str, port: int) -> Path:
    path = tmp_path / "deployment.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "restart-test",
                "robots": [{"id": ROBOT_ID, "kind": "sim-kitchen", "options": {"camera_size": 32}}],
                "policy": {"url": worker_url, "timeout_s": 30},
                # a loaded CI machine can take seconds per tiny-model chunk: do not pause the task for lateness
                "orchestrator": {"worker_late_s": 60, "max_task_s": 600},
                "system2": {"backend": "local"},
                "api": {"host": "127.0.0.1", "port": port, "database_url": f"sqlite:///{tmp_path / 'hearth.db'}"},
                "episodes_dir": str(tmp_path / "episodes"),
            }
        )
    )
    return path


def serve(deployment: Path, log: Path):
    return spawn([PYTHON, "-m", "agent.cli", "serve-api", "--deployment", str(deployment)], log)


def wait_healthy(client: httpx.Client, process) -> None:
    def healthy():
        assert process.alive(), process.log_text()[-3000:]
        return client.get("/api/v1/health").status_code == 200

    wait_until(healthy, timeout=180, what="API healthy")


def state_of(client: httpx.Client, task_id: str) -> dict:
    return client.get(f"/api/v1/tasks/{task_id}").json()


def start_running_task(client: httpx.Client) -> str:
    task_id = client.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK}).json()["id"]
    wait_until(lambda: state_of(client, task_id)["state"] == "running", timeout=180, what="task running")
    wait_until(  # some frames recorded, so the episode has content to keep
        lambda: client.get(f"/api/v1/robots/{ROBOT_ID}/status").json()["executed_actions"] >= 20,
        timeout=180,
        what="actions executed",
    )
    return task_id


def test_tasks_and_episodes_survive_crash_and_graceful_restart(tmp_path, worker_url):
    port = free_port()
    deployment = write_deployment(tmp_path, worker_url, port)
    store = Store(f"sqlite:///{tmp_path / 'hearth.db'}")
    _info, secret = store.create_token("restart-test", "operator")
    store.close()
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )

    with serve(deployment, tmp_path / "api1.log") as api:
        wait_healthy(client, api)
        finished = start_running_task(client)
        assert client.post(f"/api/v1/tasks/{finished}/abort").json()["state"] == "aborted"
        episode = wait_until(
            lambda: next((e for e in client.get("/api/v1/episodes").json()["items"] if e["task_id"] == finished), None),
            timeout=60,
            what="episode indexed",
        )
        crashed = start_running_task(client)
        api.signal_group(signal.SIGKILL)
        api.popen.wait(timeout=30)

    with serve(deployment, tmp_path / "api2.log") as api:
        wait_healthy(client, api)
        before = state_of(client, finished)
        assert before["state"] == "aborted" and before["subtasks"] and before["outcome"] == "aborted"
        after_crash = state_of(client, crashed)
        assert after_crash["state"] == "interrupted" and "stopped" in after_crash["reason"]
        assert after_crash["ended_at"] is not None
        events = client.get(f"/api/v1/tasks/{finished}/events").json()["items"]
        assert [e["data"]["state"] for e in events if e["kind"] == "task_state"][-1] == "aborted"
        episodes = client.get("/api/v1/episodes").json()["items"]
        kept = next(e for e in episodes if e["task_id"] == finished)
        assert kept["episode_index"] == episode["episode_index"] and kept["outcome"] == "aborted"
        index = kept["episode_index"]
        assert client.get(f"/api/v1/episodes/{ROBOT_ID}/{index}/timeline").status_code == 200
        video = client.get(f"/api/v1/episodes/{ROBOT_ID}/{index}/video/head")
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"

        graceful = start_running_task(client)
        api.stop(signal.SIGTERM, timeout=60)

    with serve(deployment, tmp_path / "api3.log") as api:
        wait_healthy(client, api)
        stopped = state_of(client, graceful)
        assert stopped["state"] == "interrupted", stopped
        assert state_of(client, finished)["state"] == "aborted"
    client.close()
