"""The whole task lifecycle through the API on the simulated kitchen with the tiny model and the real worker:
create → running (System 2 subtasks) → coached → paused → resumed → aborted → episode recorded, indexed,
reviewable (timeline, video) and deletable; webhooks signed for every state change; e-stop and reset."""

from __future__ import annotations

import json

import pytest

from agent.api.webhooks import SIGNATURE_HEADER, verify
from tests.agent.api.conftest import ROBOT_ID, TASK, api_stack
from tests.agent.api.support import Receiver
from tests.support import wait_until

pytestmark = pytest.mark.slow
SECRET = "home-assistant-shared-secret"


@pytest.fixture(scope="module")
def receiver():
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(sim_robot, worker_url, tmp_path_factory, receiver):
    api = {"webhooks": [{"url": receiver.url, "secret": SECRET, "events": ["task_state"]}]}
    with api_stack(sim_robot, worker_url, tmp_path_factory.mktemp("life"), api=api) as stack:
        yield stack


def task_state(client, task_id: str) -> dict:
    response = client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_task_lifecycle_end_to_end(stack, receiver):
    operator, admin, viewer = stack.clients["operator"], stack.clients["admin"], stack.clients["viewer"]
    created = operator.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    assert created.headers["location"] == f"/api/v1/tasks/{task_id}"
    assert created.json()["created_by"] is not None

    running = wait_until(
        lambda: (t := task_state(viewer, task_id))["state"] == "running" and t["subtasks"] and t,
        timeout=120,
        what="task running with a System-2 subtask",
    )
    assert running["subtasks"][0]["source"] == "policy"
    # let the robot execute (and the recorder keep) some frames before the operator steps in
    wait_until(
        lambda: viewer.get(f"/api/v1/robots/{ROBOT_ID}/status").json()["executed_actions"] >= 20,
        timeout=120,
        what="actions executed",
    )

    coached = operator.post(f"/api/v1/tasks/{task_id}/coaching", json={"utterance": "pick up the can"})
    assert coached.status_code == 200, coached.text
    assert coached.json()["result"]["subtask"] == "pick up the can"
    last = task_state(viewer, task_id)["subtasks"][-1]
    assert (last["text"], last["source"]) == ("pick up the can", "coach")

    assert operator.post(f"/api/v1/tasks/{task_id}/pause").json()["state"] == "paused"
    assert operator.post(f"/api/v1/tasks/{task_id}/resume").json()["state"] == "running"
    aborted = operator.post(f"/api/v1/tasks/{task_id}/abort")
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
    assert aborted.json()["outcome"] == "aborted"

    finished = operator.post(f"/api/v1/tasks/{task_id}/coaching", json={"utterance": "put it down"})
    assert finished.status_code == 409 and finished.json()["code"] == "task_finished"

    # the store has the whole event history, in order
    def states():
        events = viewer.get(f"/api/v1/tasks/{task_id}/events").json()["items"]
        return [e["data"]["state"] for e in events if e["kind"] == "task_state"]

    wait_until(lambda: states()[-1:] == ["aborted"], timeout=30, what="aborted state persisted")
    assert states()[:2] == ["queued", "running"] and "paused" in states()
    events = viewer.get(f"/api/v1/tasks/{task_id}/events").json()["items"]
    sources = [e["data"]["source"] for e in events if e["kind"] == "subtask"]
    assert sources[0] == "policy" and "coach" in sources
    assert any(e["kind"] == "coaching" and e["data"]["coached"] == "pick up the can" for e in events)

    # the episode is recorded, indexed with its task, reviewable
    episode = wait_until(
        lambda: next((e for e in viewer.get("/api/v1/episodes").json()["items"] if e["task_id"] == task_id), None),
        timeout=60,
        what="episode indexed",
    )
    assert episode["outcome"] == "aborted" and episode["task"] == TASK
    index = episode["episode_index"]
    assert viewer.get("/api/v1/episodes", params={"outcome": "aborted"}).json()["items"][0]["task_id"] == task_id
    assert viewer.get("/api/v1/episodes", params={"outcome": "succeeded"}).json()["items"] == []
    timeline = viewer.get(f"/api/v1/episodes/{ROBOT_ID}/{index}/timeline")
    assert timeline.status_code == 200, timeline.text
    assert "pick up the can" in json.dumps(timeline.json()["subtasks"])
    assert "coach" in json.dumps(timeline.json()["subtasks"])
    video = viewer.get(f"/api/v1/episodes/{ROBOT_ID}/{index}/video/head")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    missing = viewer.get(f"/api/v1/episodes/{ROBOT_ID}/{index}/video/ceiling")
    assert missing.status_code == 404 and missing.json()["code"] == "camera_not_found"

    # webhooks: one signed delivery per state change of this task, in order
    def delivered():
        out = []
        for headers, body in list(receiver.requests):
            assert verify(SECRET, body, headers[SIGNATURE_HEADER])
            payload = json.loads(body)
            if payload["task_id"] == task_id:
                out.append(payload["data"]["state"])
        return out

    wait_until(lambda: delivered()[-1:] == ["aborted"], timeout=30, what="webhook for the abort")
    assert delivered() == states()

    assert admin.delete(f"/api/v1/episodes/{ROBOT_ID}/{index}").status_code == 200
    assert viewer.get(f"/api/v1/episodes/{ROBOT_ID}/{index}").status_code == 404
    assert all(e["episode_index"] != index for e in viewer.get("/api/v1/episodes").json()["items"])


def test_estop_pauses_the_task_and_reset_moves_nothing_until_an_operator_resumes(stack):
    operator, automation = stack.clients["operator"], stack.clients["automation"]
    first = operator.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK}).json()["id"]
    wait_until(lambda: task_state(operator, first)["state"] == "running", timeout=120, what="first task running")

    stopped = automation.post(f"/api/v1/robots/{ROBOT_ID}/estop", json={"reason": "child in the kitchen"})
    assert stopped.status_code == 200 and stopped.json()["estopped"] is True
    paused = wait_until(
        lambda: (t := task_state(operator, first))["state"] == "paused" and t, timeout=30, what="paused by e-stop"
    )
    assert paused["reason"] == "e-stop: child in the kitchen (api token 'test-automation')"
    assert operator.get(f"/api/v1/robots/{ROBOT_ID}/status").json()["estopped"] is True

    second = automation.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK}).json()["id"]
    assert task_state(operator, second)["state"] == "queued"
    assert automation.post(f"/api/v1/robots/{ROBOT_ID}/estop/reset").status_code == 403  # reset: operator/admin
    assert operator.post(f"/api/v1/robots/{ROBOT_ID}/estop/reset").json()["estopped"] is False
    after = task_state(operator, first)
    assert (after["state"], after["reason"]) == ("paused", "e-stop released: waiting for an operator to resume")
    status = operator.get(f"/api/v1/robots/{ROBOT_ID}/status").json()
    tick, executed = status["tick"], status["executed_actions"]
    wait_until(
        lambda: operator.get(f"/api/v1/robots/{ROBOT_ID}/status").json()["tick"] >= tick + 40,
        timeout=120,
        what="40 ticks after the reset",
    )
    status = operator.get(f"/api/v1/robots/{ROBOT_ID}/status").json()
    assert status["executed_actions"] == executed and status["queue_held"] is True
    assert task_state(operator, second)["state"] == "queued"

    resumed = operator.post(f"/api/v1/tasks/{first}/resume").json()
    assert (resumed["state"], resumed["reason"]) == ("running", "resumed by operator")
    assert [(p["action"], p["cause"]) for p in resumed["pauses"]] == [
        ("pause", "e-stop"),
        ("reason", "e-stop"),
        ("resume", "operator"),
    ]
    events = operator.get(f"/api/v1/tasks/{first}/events").json()["items"]
    pauses = [(e["data"]["state"], e["data"]["cause"]) for e in events if e["kind"] == "task_state"]
    assert ("paused", "e-stop") in pauses and ("running", "operator") in pauses
    assert operator.post(f"/api/v1/tasks/{first}/abort").json()["state"] == "aborted"
    wait_until(lambda: task_state(operator, second)["state"] == "running", timeout=120, what="queue released")
    assert operator.post(f"/api/v1/tasks/{second}/abort").json()["state"] == "aborted"
