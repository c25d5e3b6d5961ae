"""Task creation refuses what can never run, with a code and both numbers; unlisted tasks carry their warning
through the record, the API and the queue; the queue is bounded (issue 16).

The runtime is real but not started (tasks stay queued), with the tiny policy's real tokenizer as the budget.
"""

from __future__ import annotations

import pytest

from agent.prompt_budget import TokenizerBudget
from tests.agent.api.conftest import ROBOT_ID, TASK, api_stack

NO_SUCCESS_CHECK = "no success check for this task"
LONG_TASK = ("please put the can in the sink and then " * 8).strip()[:289]


@pytest.fixture(scope="module")
def stack(sim_robot, worker_url, tiny_policy, tmp_path_factory):
    budget = TokenizerBudget.for_policy(tiny_policy)
    with api_stack(
        sim_robot,
        worker_url,
        tmp_path_factory.mktemp("admission"),
        start=False,
        record=False,
        prompt_budget=budget,
        max_queued=3,
    ) as stack:
        yield stack


def test_a_task_over_the_policys_token_budget_is_refused_with_both_numbers(stack, tiny_policy):
    assert len(LONG_TASK) == 289
    expected = TokenizerBudget.for_policy(tiny_policy).measure(LONG_TASK)
    response = stack.clients["operator"].post(
        "/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": LONG_TASK, "allow_unlisted": True}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "task_too_long_for_policy"
    assert expected.limit == 48 and expected.tokens > 48
    assert f"needs {expected.tokens} prompt tokens but this policy accepts at most 48" in body["message"]
    assert body["details"] == [{"tokens": expected.tokens, "limit": 48}]
    assert stack.clients["operator"].get("/api/v1/tasks").json()["items"] == []  # nothing was queued


def test_unknown_task_is_refused_listing_the_known_ones_unless_allowed(stack):
    operator = stack.clients["operator"]
    refused = operator.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": "wipe the counter"})
    assert refused.status_code == 422 and refused.json()["code"] == "unknown_task"
    known = stack.runtime.description.tasks
    assert refused.json()["details"] == [{"known_tasks": known}]
    assert all(repr(task) in refused.json()["message"] for task in known)

    created = operator.post(
        "/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": "wipe the counter", "allow_unlisted": True}
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    assert created.json()["warnings"] == [NO_SUCCESS_CHECK]
    assert operator.get(f"/api/v1/tasks/{task_id}").json()["warnings"] == [NO_SUCCESS_CHECK]
    queue = operator.get(f"/api/v1/robots/{ROBOT_ID}/queue").json()["items"]
    assert next(t for t in queue if t["id"] == task_id)["warnings"] == [NO_SUCCESS_CHECK]
    assert stack.store.get_task(task_id).warnings == [NO_SUCCESS_CHECK]  # persisted
    listed = operator.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK})
    assert listed.status_code == 201 and listed.json()["warnings"] == []


def test_queue_full_is_429_with_the_limit(stack):
    operator = stack.clients["operator"]
    while stack.runtime.status()["queued"] < 3:
        assert operator.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK}).status_code == 201
    full = operator.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK})
    assert full.status_code == 429 and full.json()["code"] == "queue_full"
    assert full.json()["details"] == [{"limit": 3}]
    assert "limit 3" in full.json()["message"]


def test_unknown_fields_in_a_request_body_are_refused_and_nothing_is_queued(stack):
    """A misspelled flag must not silently create a task without it (issue 17)."""
    operator = stack.clients["operator"]
    before = operator.get("/api/v1/tasks").json()["items"]
    response = operator.post("/api/v1/tasks", json={"robot_id": ROBOT_ID, "text": TASK, "allow_unlist": True})
    assert response.status_code == 422, response.text
    assert "allow_unlist" in response.text
    assert operator.get("/api/v1/tasks").json()["items"] == before
    coached = operator.post("/api/v1/tasks/none/coaching", json={"utterance": "pick up the can", "tone": "calm"})
    assert coached.status_code == 422, coached.text
