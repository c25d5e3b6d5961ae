"""`GET /metrics` on the real app: request latency by route template, tasks by state, live viewers."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from agent.store import schema
from tests.agent.api.conftest import ROBOT_ID, api_stack
from tests.support import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(sim_robot, worker_url, tmp_path_factory):
    with api_stack(sim_robot, worker_url, tmp_path_factory.mktemp("metrics"), start=False) as stack:
        yield stack


def _samples(stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = stack.clients["viewer"].get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_need_a_token(stack) -> None:
    assert stack.clients[None].get("/metrics").status_code == 401


def test_request_latency_is_labelled_by_route_template_not_raw_path(stack) -> None:
    for task_id in ("no-such-task-1", "no-such-task-2"):
        assert stack.clients["viewer"].get(f"/api/v1/tasks/{task_id}").status_code == 404
    samples = _samples(stack)
    key = (
        "hearth_api_request_seconds_count",
        (("method", "GET"), ("route", "/api/v1/tasks/{task_id}"), ("status", "404")),
    )
    assert samples[key] == 2
    assert stack.clients["viewer"].get("/no/such/page").status_code == 404
    samples = _samples(stack)
    assert (
        samples[("hearth_api_request_seconds_count", (("method", "GET"), ("route", "unmatched"), ("status", "404")))]
        == 1
    )
    routes = {dict(labels).get("route", "") for _, labels in samples}
    assert not any("no-such" in route or "/no/such" in route for route in routes), routes


def test_tasks_by_state_come_from_the_store(stack) -> None:
    now = time.time()
    with stack.store.engine.begin() as conn:
        for i, state in enumerate(("succeeded", "succeeded", "failed")):
            conn.execute(schema.tasks.insert().values(
                id=f"metrics-{i}", robot_id=ROBOT_ID, text="wipe", state=state, created_at=now, updated_at=now,
                subtasks=[],
            ))  # fmt: skip
    samples = _samples(stack)
    assert samples[("hearth_api_tasks", (("state", "succeeded"),))] == 2
    assert samples[("hearth_api_tasks", (("state", "failed"),))] == 1


def test_live_viewers_count_open_live_sockets(stack) -> None:
    def viewers() -> float:
        return _samples(stack)[("hearth_api_live_viewers", (("robot_id", ROBOT_ID),))]

    assert viewers() == 0

    def url() -> str:  # each socket needs its own single-use ticket
        ticket = stack.clients["viewer"].post("/api/v1/live/tickets").json()["ticket"]
        return f"{stack.server.ws_url}/api/v1/robots/{ROBOT_ID}/live?ticket={ticket}&fps=0"

    with connect(url(), open_timeout=10), connect(url(), open_timeout=10):
        wait_until(lambda: viewers() == 2, timeout=30, what="two live viewers")
    wait_until(lambda: viewers() == 0, timeout=30, what="viewers gone")
