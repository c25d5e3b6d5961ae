"""Coded JSON errors for every kind of bad request, token management over HTTP and the CLI, CORS."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from agent.api.app import create_app
from agent.cli import app as cli_app
from agent.settings import ApiConfig
from agent.store import Store
from tests.agent.api.support import ServedApp, make_tokens, role_clients


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("api") / "hearth.db"
    config = ApiConfig(database_url=f"sqlite:///{db}", cors_origins=["http://console.local"], max_task_text_chars=40)
    store = Store(config.database_url)
    tokens = make_tokens(store)
    with ServedApp(create_app(config, runtimes={}, store=store)) as server, role_clients(server.url, tokens) as clients:
        yield server, clients, store, db


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_health_needs_no_token(served):
    _server, clients, _store, _db = served
    response = clients[None].get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer hearth_not-a-real-token", "Basic dXNlcjpwYXNz"])
def test_bad_or_missing_token_is_401_with_code(served, header):
    server, _clients, _store, _db = served
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{server.url}/api/v1/tasks", headers=headers, timeout=10)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_malformed_json_is_400(served):
    _server, clients, _store, _db = served
    response = clients["operator"].post(
        "/api/v1/tasks", content=b'{"robot_id": "r1", "text": ', headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "malformed_json")


def test_validation_errors_name_the_field(served):
    _server, clients, _store, _db = served
    body = assert_error(clients["operator"].post("/api/v1/tasks", json={"robot_id": "r1"}), 422, "validation_error")
    assert "text" in body["message"]
    assert body["details"][0]["loc"] == ["body", "text"]
    assert_error(clients["operator"].get("/api/v1/tasks", params={"limit": -1}), 422, "validation_error")


def test_task_text_too_long_and_unknown_robot(served):
    _server, clients, _store, _db = served
    body = assert_error(
        clients["operator"].post("/api/v1/tasks", json={"robot_id": "r1", "text": "wipe " * 20}),
        422,
        "task_text_too_long",
    )
    assert "limit is 40" in body["message"]
    assert_error(
        clients["operator"].post("/api/v1/tasks", json={"robot_id": "ghost", "text": "wipe"}), 404, "robot_not_found"
    )
    assert_error(clients["viewer"].get("/api/v1/robots/ghost"), 404, "robot_not_found")
    assert_error(clients["viewer"].get("/api/v1/tasks/nope"), 404, "task_not_found")
    assert_error(clients["viewer"].get("/api/v1/episodes/ghost/0"), 404, "episode_not_found")


def test_unknown_route_and_wrong_method(served):
    _server, clients, _store, _db = served
    assert_error(clients["admin"].get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(clients["admin"].put("/api/v1/tasks"), 405, "method_not_allowed")


def test_forbidden_is_403_with_code(served):
    _server, clients, _store, _db = served
    body = assert_error(clients["operator"].get("/api/v1/tokens"), 403, "forbidden")
    assert "operator" in body["message"]


def test_token_lifecycle_over_http(served):
    _server, clients, _store, _db = served
    created = clients["admin"].post("/api/v1/tokens", json={"name": "home assistant", "role": "automation"})
    assert created.status_code == 201
    secret, token_id = created.json()["token"], created.json()["id"]
    listed = clients["admin"].get("/api/v1/tokens").json()["items"]
    assert any(t["id"] == token_id and t["role"] == "automation" for t in listed)
    assert all("token" not in t and "token_hash" not in t for t in listed)
    automation = httpx.Client(base_url=clients["admin"].base_url, headers={"Authorization": f"Bearer {secret}"})
    assert automation.get("/api/v1/tasks").status_code == 200
    assert clients["admin"].delete(f"/api/v1/tokens/{token_id}").json()["revoked_at"] is not None
    assert_error(automation.get("/api/v1/tasks"), 401, "unauthorized")
    assert_error(clients["admin"].delete("/api/v1/tokens/nope"), 404, "token_not_found")
    assert_error(clients["admin"].post("/api/v1/tokens", json={"name": "x", "role": "root"}), 422, "validation_error")
    automation.close()


def test_cors_preflight_allows_configured_origin_only(served):
    _server, clients, _store, _db = served
    headers = {
        "Origin": "http://console.local",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    ok = clients[None].options("/api/v1/tasks", headers=headers)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://console.local"
    bad = clients[None].options("/api/v1/tasks", headers={**headers, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in bad.headers


def test_cli_token_created_works_against_the_api(served):
    _server, clients, _store, db = served
    runner = CliRunner()
    result = runner.invoke(
        cli_app, ["tokens", "create", "--role", "viewer", "--name", "wall", "-q", "--database-url", f"sqlite:///{db}"]
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    viewer = httpx.Client(base_url=clients["admin"].base_url, headers={"Authorization": f"Bearer {secret}"})
    assert viewer.get("/api/v1/robots").status_code == 200
    listed = runner.invoke(cli_app, ["tokens", "list", "--database-url", f"sqlite:///{db}"])
    line = next(line for line in listed.stdout.splitlines() if line.endswith(" wall"))
    token_id = line.split()[0]
    revoked = runner.invoke(cli_app, ["tokens", "revoke", token_id, "--database-url", f"sqlite:///{db}"])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert viewer.get("/api/v1/robots").status_code == 401
    bad = runner.invoke(cli_app, ["tokens", "revoke", "no-such-id", "--database-url", f"sqlite:///{db}"])
    assert bad.exit_code == 1
    wrong_role = runner.invoke(cli_app, ["tokens", "create", "--role", "root", "--database-url", f"sqlite:///{db}"])
    assert wrong_role.exit_code == 2
    viewer.close()


def test_oversized_body_is_413_before_parsing(served):
    _server, clients, _store, _db = served
    body = b'{"robot_id": "r1", "text": "' + b"x" * 100_000 + b'"}'
    response = clients["operator"].post("/api/v1/tasks", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")
