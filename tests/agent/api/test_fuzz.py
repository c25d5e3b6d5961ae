"""Property-based fuzzing of every documented operation (schemathesis, from /openapi.json): never a 5xx.

Runs with an admin token (so requests get past auth into the handlers) against the real app and a real, idle
RobotRuntime; examples per operation are bounded so the whole file stays well under a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.agent.api.conftest import api_stack


@pytest.fixture(scope="module")
def fuzz_stack(sim_robot, worker_url, tmp_path_factory):
    with api_stack(
        sim_robot, worker_url, tmp_path_factory.mktemp("fuzz"), start=False, api={"task_rate_limit_per_minute": 1000}
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def api_schema(fuzz_stack):
    return schemathesis.openapi.from_url(f"{fuzz_stack.server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case, fuzz_stack):
    response = case.call(headers={"Authorization": f"Bearer {fuzz_stack.tokens['admin']}"}, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), response.text
