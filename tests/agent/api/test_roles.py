"""Every endpoint × every role, table-driven; plus idempotency keys and rate limits on task creation.

The runtime here is real but not started: commands apply inline and tasks stay queued, so the matrix exercises
the real orchestrator code paths without spending CPU on a control loop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib

import httpx
import pytest

from agent.api.auth import ROLE_PERMISSIONS, Permission, Role
from tests.agent.api.conftest import ROBOT_ID, TASK, api_stack
from tests.agent.api.support import ROLES
from tests.pg import fresh_database

R = ROBOT_ID
# (method, path, json body, permission needed). Ids that do not exist are fine: a 404 proves auth let it through.
ENDPOINTS: list[tuple[str, str, dict | None, Permission | None]] = [
    ("GET", "/api/v1/health", None, None),
    ("GET", "/api/v1/robots", None, Permission.ROBOTS_READ),
    ("GET", f"/api/v1/robots/{R}", None, Permission.ROBOTS_READ),
    ("GET", f"/api/v1/robots/{R}/status", None, Permission.ROBOTS_READ),
    ("GET", f"/api/v1/robots/{R}/queue", None, Permission.TASKS_READ),
    ("POST", "/api/v1/tasks", {"robot_id": R, "text": TASK}, Permission.TASKS_WRITE),
    ("GET", "/api/v1/tasks", None, Permission.TASKS_READ),
    ("GET", "/api/v1/tasks/none", None, Permission.TASKS_READ),
    ("GET", "/api/v1/tasks/none/events", None, Permission.TASKS_READ),
    ("POST", "/api/v1/tasks/none/pause", None, Permission.TASKS_WRITE),
    ("POST", "/api/v1/tasks/none/resume", None, Permission.TASKS_WRITE),
    ("POST", "/api/v1/tasks/none/abort", None, Permission.TASKS_WRITE),
    ("POST", "/api/v1/tasks/none/coaching", {"utterance": "pick up the can"}, Permission.COACHING),
    ("POST", f"/api/v1/robots/{R}/estop", {"reason": "test"}, Permission.ESTOP),
    ("POST", f"/api/v1/robots/{R}/estop/reset", None, Permission.ESTOP_RESET),
    ("POST", "/api/v1/estop", None, Permission.ESTOP),
    ("POST", f"/api/v1/robots/{R}/estop/reset", None, Permission.ESTOP_RESET),
    ("GET", "/api/v1/episodes", None, Permission.EPISODES_READ),
    ("GET", f"/api/v1/episodes/{R}/0", None, Permission.EPISODES_READ),
    ("GET", f"/api/v1/episodes/{R}/0/timeline", None, Permission.EPISODES_READ),
    ("GET", f"/api/v1/episodes/{R}/0/video/head", None, Permission.EPISODES_READ),
    ("GET", f"/api/v1/episodes/{R}/0/data", None, Permission.EPISODES_READ),
    ("GET", f"/api/v1/episodes/{R}/0/rerun", None, Permission.EPISODES_READ),
    ("POST", f"/api/v1/episodes/{R}/0/label", {"outcome": "failed", "success": False}, Permission.EPISODES_LABEL),
    ("DELETE", f"/api/v1/episodes/{R}/0", None, Permission.EPISODES_DELETE),
    ("GET", "/api/v1/tokens/me", None, Permission.ROBOTS_READ),
    ("POST", "/api/v1/live/tickets", None, Permission.LIVE),
    ("GET", "/api/v1/tokens", None, Permission.TOKENS),
    ("POST", "/api/v1/tokens", {"name": "x", "role": "viewer"}, Permission.TOKENS),
    ("DELETE", "/api/v1/tokens/none", None, Permission.TOKENS),
    ("GET", "/metrics", None, Permission.ROBOTS_READ),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, sim_robot, worker_url, tmp_path_factory):
    """The matrix on the embedded SQLite store and on a real PostgreSQL server (tests/pg.py)."""
    api: dict = {"task_rate_limit_per_minute": 5}
    with contextlib.ExitStack() as resources:
        if request.param == "postgresql":
            api["database_url"] = resources.enter_context(fresh_database(request.getfixturevalue("postgres_server")))
        yield resources.enter_context(
            api_stack(sim_robot, worker_url, tmp_path_factory.mktemp("roles"), start=False, record=False, api=api)
        )


def test_every_openapi_route_is_in_the_matrix(stack):
    spec = stack.clients[None].get("/openapi.json").json()
    documented = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    covered = set()
    for method, path, _body, _perm in ENDPOINTS:
        for template_method, template in documented:
            parts, actual = template.split("/"), path.split("/")
            if (
                template_method == method
                and len(parts) == len(actual)
                and all(t == a or t.startswith("{") for t, a in zip(parts, actual, strict=True))
            ):
                covered.add((template_method, template))
    assert documented - covered == set()


@pytest.mark.parametrize("role", [*ROLES, None])
def test_role_matrix(stack, role):
    client = stack.clients[role]
    for method, path, body, permission in ENDPOINTS:
        response = client.request(method, path, json=body)
        where = f"{role} {method} {path}: {response.status_code} {response.text[:200]}"
        if permission is None:
            assert response.status_code == 200, where
        elif role is None:
            assert response.status_code == 401 and response.json()["code"] == "unauthorized", where
        elif permission in ROLE_PERMISSIONS[Role(role)]:
            assert response.status_code not in (401, 403), where
            assert response.status_code < 500, where
        else:
            assert response.status_code == 403 and response.json()["code"] == "forbidden", where


def test_estop_is_every_role_but_viewer():
    granted = {role.value for role, perms in ROLE_PERMISSIONS.items() if Permission.ESTOP in perms}
    assert granted == {"operator", "automation", "admin"}


def _new_client(stack, role: str) -> httpx.Client:
    _info, secret = stack.store.create_token(f"fresh-{role}", role)
    return httpx.Client(base_url=stack.server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def test_idempotency_key_returns_the_first_task(stack):
    with _new_client(stack, "automation") as client:
        headers = {"Idempotency-Key": "evening-dishes-2026-12-04"}
        first = client.post("/api/v1/tasks", json={"robot_id": R, "text": TASK}, headers=headers)
        assert first.status_code == 201, first.text
        again = client.post("/api/v1/tasks", json={"robot_id": R, "text": f"  {TASK} "}, headers=headers)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        other = client.post("/api/v1/tasks", json={"robot_id": R, "text": "wipe the counter"}, headers=headers)
        assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
        ids = [t.id for t in stack.runtime.tasks()]
        assert ids.count(first.json()["id"]) == 1


def test_concurrent_retries_with_one_key_create_one_task(stack):
    with _new_client(stack, "operator") as client:
        before = len(stack.runtime.tasks())

        def post(_):
            return client.post(
                "/api/v1/tasks", json={"robot_id": R, "text": TASK}, headers={"Idempotency-Key": "same-click"}
            )

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(post, range(4)))
        assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
        assert len({r.json()["id"] for r in responses}) == 1
        assert len(stack.runtime.tasks()) == before + 1


def test_task_creation_is_rate_limited_per_token(stack):
    with _new_client(stack, "automation") as client, _new_client(stack, "automation") as other:
        statuses = [
            client.post("/api/v1/tasks", json={"robot_id": R, "text": TASK}, headers={"Idempotency-Key": f"k{i}"})
            for i in range(6)
        ]
        assert [r.status_code for r in statuses] == [201] * 5 + [429]
        limited = statuses[-1]
        assert limited.json()["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        # a retry of an already-created task is answered from the idempotency record, not refused
        replay = client.post("/api/v1/tasks", json={"robot_id": R, "text": TASK}, headers={"Idempotency-Key": "k0"})
        assert replay.status_code == 200
        # reads are not limited, and other tokens have their own bucket
        assert client.get("/api/v1/tasks").status_code == 200
        assert other.post("/api/v1/tasks", json={"robot_id": R, "text": TASK}).status_code == 201


def test_queued_tasks_are_listed_and_abortable(stack):
    with _new_client(stack, "operator") as client:
        created = client.post(
            "/api/v1/tasks", json={"robot_id": R, "text": "wipe the counter", "allow_unlisted": True}
        ).json()
        assert created["state"] == "queued"
        queue = client.get(f"/api/v1/robots/{R}/queue").json()["items"]
        assert created["id"] in [t["id"] for t in queue]
        listed = client.get("/api/v1/tasks", params={"state": "queued", "robot_id": R}).json()["items"]
        assert created["id"] in [t["id"] for t in listed]
        aborted = client.post(f"/api/v1/tasks/{created['id']}/abort")
        assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
        again = client.post(f"/api/v1/tasks/{created['id']}/abort")
        assert again.status_code == 409, again.text
        coached = client.post(f"/api/v1/tasks/{created['id']}/coaching", json={"utterance": "pick it up"})
        assert coached.status_code == 409 and coached.json()["code"] == "task_finished"
