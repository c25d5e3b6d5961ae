"""Property-based fuzzing of every documented operation (schemathesis, from /openapi.json): never a 5xx, and
every 4xx has the coded JSON error body.

Runs with an admin token (so requests get past auth into the handlers) against the real app and a real, idle
RobotRuntime; examples per operation are bounded and derandomized so the file stays well under a minute.
(Operations are driven one by one with hypothesis rather than schemathesis' pytest plugin, whose fixture
loader does not work with this pytest.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.agent.api.conftest import api_stack

EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def fuzz_stack(sim_robot, worker_url, tmp_path_factory):
    with api_stack(
        sim_robot, worker_url, tmp_path_factory.mktemp("fuzz"), start=False, record=False, api={"task_rate_limit_per_minute": 1000}
    ) as stack:
        yield stack


def test_no_server_errors_on_any_operation(fuzz_stack):
    schema = schemathesis.openapi.from_url(f"{fuzz_stack.server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_stack.tokens['admin']}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case):
            response = case.call(headers=headers, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])
            if 400 <= response.status_code < 500:
                body = response.json()
                assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), response.text

        try:
            check()
        except Exception as exc:  # collect all operations' failures, then report them together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
