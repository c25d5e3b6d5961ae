"""The typed contracts of issue 19: the robot status and every live message validate against their models as a
running stack really sends them, the models are listed in /openapi.json, and /tokens/me names the permissions
the token's role grants (from agent.api.auth, the one source)."""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from agent.api.auth import ROLE_PERMISSIONS, Role
from agent.api.live_messages import LiveAck, LiveEventMessage, LiveFrame, LiveHello, LivePong
from agent.events import EVENT_PAYLOAD_MODELS, validate_payload
from agent.runtime_status import RobotStatus
from agent.store import StoredTask
from tests.agent.api.conftest import ROBOT_ID, TASK, api_stack
from tests.support import wait_until

pytestmark = pytest.mark.slow

MESSAGE_MODELS = {
    "hello": LiveHello,
    "event": LiveEventMessage,
    "chunk": LiveEventMessage,
    "state": LiveEventMessage,
    "frame": LiveFrame,
    "ack": LiveAck,
    "pong": LivePong,
}


@pytest.fixture(scope="module")
def stack(sim_robot, worker_url, tmp_path_factory):
    with api_stack(sim_robot, worker_url, tmp_path_factory.mktemp("contracts"), api={"live_max_fps": 20}) as stack:
        yield stack


def test_openapi_lists_the_status_live_messages_and_every_event_payload(stack):
    spec = stack.clients[None].get("/openapi.json").json()
    names = set(spec["components"]["schemas"])
    expected = {
        "RobotStatus",
        "CoachingStatus",
        "StoredTask",
        "LiveTicket",
        "LiveHello",
        "LiveEventMessage",
        "LiveFrame",
        "LiveError",
        "LiveAck",
        "LivePong",
        "LiveCoachRequest",
        "LivePingRequest",
    }
    expected |= {model.__name__ for model in EVENT_PAYLOAD_MODELS.values()}
    assert expected <= names, sorted(expected - names)
    status = spec["paths"]["/api/v1/robots/{robot_id}/status"]["get"]["responses"]["200"]
    assert status["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RobotStatus"}
    for name in ("LiveHello", "LiveEventMessage", "TaskStatePayload"):
        assert spec["components"]["schemas"][name]["properties"]


def test_the_status_a_running_robot_reports_is_the_model_and_nothing_else(stack):
    raw = stack.runtime.status()
    assert set(raw) == set(RobotStatus.model_fields)  # no key the model does not document, none it lacks
    body = stack.clients["viewer"].get(f"/api/v1/robots/{ROBOT_ID}/status").json()
    assert body == RobotStatus.model_validate(body).model_dump(mode="json")
    assert body["robot_id"] == ROBOT_ID and body["running"] is True
    robot = stack.clients["viewer"].get(f"/api/v1/robots/{ROBOT_ID}").json()
    assert set(robot["status"]) == set(RobotStatus.model_fields)
    assert "head" in [camera["name"] for camera in robot["description"]["cameras"]]


def receive(ws, until, timeout: float = 120.0) -> list[dict]:
    """Messages until one satisfies `until` (inclusive), each validated against its model on arrival."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        MESSAGE_MODELS[message["type"]].model_validate(message)
        seen.append(message)
        if until(message):
            return seen
    raise TimeoutError(f"nothing matched in {timeout}s; saw {[m['type'] for m in seen][-20:]}")


def test_every_message_a_running_stack_sends_validates_against_its_model(stack):
    operator = stack.clients["operator"]
    ticket = operator.post("/api/v1/live/tickets").json()["ticket"]
    url = f"{stack.server.ws_url}/api/v1/robots/{ROBOT_ID}/live?ticket={ticket}&fps=10&size=32"
    with connect(url, open_timeout=10) as ws:
        hello = receive(ws, lambda m: m["type"] == "hello")[-1]
        assert hello["status"]["robot_id"] == ROBOT_ID
        task_id = operator.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK}).json()["id"]
        seen = receive(ws, lambda m: m.get("kind") == "subtask" and m["task_id"] == task_id)
        seen += receive(ws, lambda m: m["type"] == "chunk")
        seen += receive(ws, lambda m: m["type"] == "state")
        ws.send(json.dumps({"type": "coach", "task_id": task_id, "utterance": "pick up the can"}))
        seen += receive(ws, lambda m: m["type"] == "ack")
        seen += (
            receive(ws, lambda m: m.get("kind") == "coaching")
            if not any(m.get("kind") == "coaching" for m in seen)
            else []
        )
        operator.post(f"/api/v1/tasks/{task_id}/abort")
        seen += receive(ws, lambda m: m.get("kind") == "task_state" and m["data"]["state"] == "aborted")
        ws.send(json.dumps({"type": "ping", "ts": 7}))
        seen += receive(ws, lambda m: m["type"] == "pong")
    kinds = {m.get("kind") for m in seen}
    assert {"task_state", "subtask", "chunk", "state", "coaching", "episode"} <= kinds, kinds
    assert {m["type"] for m in seen} >= {"frame", "event", "chunk", "state", "ack", "pong"}

    wait_until(
        lambda: stack.clients["viewer"].get(f"/api/v1/tasks/{task_id}").json()["state"] == "aborted",
        timeout=60,
        what="task aborted",
    )
    task = stack.clients["viewer"].get(f"/api/v1/tasks/{task_id}").json()
    StoredTask.model_validate(task)
    events = stack.clients["viewer"].get(f"/api/v1/tasks/{task_id}/events").json()["items"]
    assert events
    for event in events:  # what the store kept (and the webhooks send) is the same payload
        validate_payload(event["kind"], event["data"])


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_tokens_me_lists_the_permissions_of_the_role(stack, role):
    body = stack.clients[role].get("/api/v1/tokens/me").json()
    assert body["role"] == role
    assert body["permissions"] == sorted(p.value for p in ROLE_PERMISSIONS[Role(role)])
    assert ("estop" in body["permissions"]) is (role == "operator")
    assert "live" in body["permissions"]
