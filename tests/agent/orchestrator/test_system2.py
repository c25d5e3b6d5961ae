"""System-2 backends: normalization, and the OpenAI backend against a real HTTP server on loopback."""

import numpy as np
import pytest

from agent.system2 import (
    CoachOnlySystem2,
    OpenAISystem2,
    System2Error,
    System2Unavailable,
    make_system2,
    normalize_subtask,
)
from robots.types import Observation
from tests.agent.orchestrator.openai_server import RuleServer, serve_rules
from tests.support import free_port


def observation() -> Observation:
    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for name in ("head", "wrist")}
    return Observation(images=images, state=np.zeros(4, np.float32))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Subtask: Pick up the cup.", "pick up the cup"),
        ("  \n- put the cup in the sink!\nBecause it is dirty", "put the cup in the sink"),
        ('"Open the top drawer"', "open the top drawer"),
        ("Done.", "done"),
        ("The task is complete", "done"),
        ("", ""),
    ],
)
def test_normalize_subtask(raw: str, expected: str) -> None:
    assert normalize_subtask(raw) == expected


def test_openai_backend_walks_the_plan_with_images_as_data_urls() -> None:
    state = RuleServer()
    with serve_rules(state) as url:
        backend = OpenAISystem2(url, "test-vlm", api_key="sekret", timeout_s=5, retries=0)
        obs = observation()
        answers = [backend.predict(obs, "put the cup in the sink") for _ in range(3)]
        backend.close()
    assert answers == ["pick up the cup", "put the cup in the sink", "done"]
    assert state.image_shapes == [(48, 64, 3)] * 6  # 2 cameras per request, decoded by the server
    body = state.requests[0]
    assert body["model"] == "test-vlm" and body["messages"][0]["role"] == "system"
    assert "done" in body["messages"][0]["content"]
    assert state.auth_headers[0] == "Bearer sekret"


def test_openai_backend_retries_transient_server_errors() -> None:
    state = RuleServer(fail_first=2)
    with serve_rules(state) as url:
        backend = OpenAISystem2(url, "m", timeout_s=5, retries=2)
        assert backend.predict(observation(), "put the cup in the sink") == "pick up the cup"
    assert len(state.requests) == 3


def test_openai_backend_retries_a_rate_limit() -> None:
    """A 429 (rate limited, `Retry-After: 1`: the SDK waits what the server asks) is retried, then answered."""
    state = RuleServer(fail_first=1, fail_status=429, retry_after="1")
    with serve_rules(state) as url:
        backend = OpenAISystem2(url, "m", timeout_s=5, retries=1)
        assert backend.predict(observation(), "put the cup in the sink") == "pick up the cup"
    assert len(state.requests) == 2


def test_openai_backend_does_not_retry_a_refused_request() -> None:
    state = RuleServer(fail_first=100, fail_status=400)
    with serve_rules(state) as url:
        backend = OpenAISystem2(url, "m", timeout_s=5, retries=3)
        with pytest.raises(System2Error, match="rejected the request: HTTP 400"):
            backend.predict(observation(), "t")
    assert len(state.requests) == 1


def test_openai_backend_gives_up_with_clear_error() -> None:
    state = RuleServer(fail_first=100)
    with serve_rules(state) as url:
        backend = OpenAISystem2(url, "m", timeout_s=5, retries=1)
        with pytest.raises(System2Unavailable, match=r"HTTP 503"):
            backend.predict(observation(), "t")
        bad_route = OpenAISystem2(url.removesuffix("/v1") + "/other", "m", timeout_s=5, retries=0)
        with pytest.raises(System2Error, match="HTTP 404"):
            bad_route.predict(observation(), "t")


def test_openai_backend_dead_port_names_the_url() -> None:
    port = free_port()
    backend = OpenAISystem2(f"http://127.0.0.1:{port}/v1", "m", timeout_s=2, retries=1)
    with pytest.raises(System2Unavailable, match=rf"127\.0\.0\.1:{port}.*2 attempt\(s\): cannot connect"):
        backend.predict(observation(), "put the cup in the sink")


def test_factory_and_coach_only() -> None:
    assert CoachOnlySystem2().predict(observation(), "x") == ""
    assert CoachOnlySystem2.autonomous is False
    assert isinstance(make_system2("coach-only"), CoachOnlySystem2)
    with pytest.raises(ValueError, match="unknown System-2 backend"):
        make_system2("gpt")
    with pytest.raises(ValueError, match="policy worker client"):
        make_system2("local")
