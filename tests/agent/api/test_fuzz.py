"""Property-based fuzzing of every documented operation (schemathesis, from /openapi.json): never a 5xx, and
every 4xx has the coded JSON error body.

Runs with an admin token (so requests get past auth into the handlers) against the real app and a real, idle
RobotRuntime; examples per operation are bounded and derandomized so the file stays well under a minute.
"""

from __future__ import annotations

import pytest
from schemathesis.checks import not_a_server_error

from tests.agent.api.conftest import api_stack
from tests.agent.api.support import fuzz_operations

EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def fuzz_stack(sim_robot, worker_url, tmp_path_factory):
    with api_stack(
        sim_robot,
        worker_url,
        tmp_path_factory.mktemp("fuzz"),
        start=False,
        record=False,
        api={"task_rate_limit_per_minute": 1000},
    ) as stack:
        yield stack


def test_no_server_errors_on_any_operation(fuzz_stack):
    def check(case, response):
        case.validate_response(response, checks=[not_a_server_error])
        if 400 <= response.status_code < 500:
            body = response.json()
            assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), response.text

    headers = {"Authorization": f"Bearer {fuzz_stack.tokens['admin']}"}
    failures = fuzz_operations(fuzz_stack.server.url, headers, EXAMPLES_PER_OPERATION, check)
    assert not failures, "\n\n".join(failures)
