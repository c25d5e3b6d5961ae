"""The OpenAPI document lists every status the API really answers (schemathesis' status-code conformance), and
the unauthenticated health route never shows webhook URLs (a Home Assistant webhook id is a credential)."""

from __future__ import annotations

import httpx
import pytest
from schemathesis.checks import status_code_conformance

from agent.api.app import create_app
from agent.settings import ApiConfig
from agent.store import Store
from tests.agent.api.conftest import api_stack
from tests.agent.api.support import ServedApp, fuzz_operations

EXAMPLES_PER_OPERATION = 6
SECRET_PATH = "/api/webhook/hearth-3f9c2b-secret-id"


@pytest.fixture(scope="module")
def conformance_stack(sim_robot, worker_url, tmp_path_factory):
    with api_stack(
        sim_robot,
        worker_url,
        tmp_path_factory.mktemp("conformance"),
        start=False,
        record=False,
        api={"task_rate_limit_per_minute": 2},  # low, so 429 is really answered while fuzzing
    ) as stack:
        yield stack


@pytest.mark.parametrize("role", ["admin", "viewer", None])
def test_every_answered_status_is_documented(conformance_stack, role):
    def check(case, response):
        case.validate_response(response, checks=[status_code_conformance])

    headers = {"Authorization": f"Bearer {conformance_stack.tokens[role]}"} if role else {}
    failures = fuzz_operations(conformance_stack.server.url, headers, EXAMPLES_PER_OPERATION, check)
    assert not failures, "\n\n".join(failures)


def test_documented_errors_use_the_error_body(conformance_stack):
    document = httpx.get(f"{conformance_stack.server.url}/openapi.json", timeout=10).json()
    create = document["paths"]["/api/v1/tasks"]["post"]["responses"]
    assert {"400", "401", "403", "409", "413", "422", "429"} <= set(create)
    assert "ErrorBody" in str(create["413"]) and "401" not in document["paths"]["/api/v1/health"]["get"]["responses"]


def test_health_without_a_token_shows_webhook_counters_not_urls(tmp_path):
    webhook = {"url": f"http://homeassistant.local:8123{SECRET_PATH}", "secret": "s" * 32}
    config = ApiConfig(database_url=f"sqlite:///{tmp_path / 'hearth.db'}", webhooks=[webhook])
    store = Store(config.database_url)
    with ServedApp(create_app(config, runtimes={}, store=store)) as server:
        response = httpx.get(f"{server.url}/api/v1/health", timeout=10)
    assert response.status_code == 200
    assert "hearth-3f9c2b-secret-id" not in response.text and "homeassistant" not in response.text
    assert response.json()["webhooks"] == [{"delivered": 0, "failed": 0, "queued": 0}]
