"""PolicyClient (the orchestrator's client) against the real worker: chunks, subtasks, errors, timeouts, reconnects."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from policy.client import PolicyClient, PolicyServerError, PolicyUnavailable
from policy.server import PolicyServer
from policy.types import ActionChunk
from tests.support import free_port

from .conftest import ACTION_DIM, API_KEY, GatedPolicy, Obs, make_obs


def test_act_returns_an_action_chunk_with_names_and_timing(server: PolicyServer) -> None:
    with PolicyClient(
        f"ws://127.0.0.1:{server.bound_port}", api_key=API_KEY, timeout_s=60, episode_id="ep-1"
    ) as client:
        metadata = client.metadata
        chunk, timing = client.act(make_obs(metadata), "pick up the cup")
        again, _ = client.act(make_obs(metadata, seed=3), "pick up the cup")
        text = client.subtask(make_obs(metadata), "put the cup in the sink")
        assert client.healthy()
    assert isinstance(chunk, ActionChunk)
    assert chunk.actions.shape == (metadata["action_horizon"], ACTION_DIM)
    assert chunk.action_names == metadata["action_names"]
    assert chunk.control_hz == metadata["control_hz"] and chunk.subtask == "pick up the cup"
    assert again.chunk_id == chunk.chunk_id + 1
    assert timing["round_trip_ms"] >= timing["server_infer_ms"] >= timing["policy_infer_ms"] > 0
    assert isinstance(text, str)


def test_cameras_the_policy_does_not_use_are_not_sent(server: PolicyServer) -> None:
    with PolicyClient(f"ws://127.0.0.1:{server.bound_port}", api_key=API_KEY, timeout_s=60) as client:
        obs = make_obs(client.metadata)
        obs.images["third"] = np.zeros((32, 32, 3), np.uint8)  # recorded by the robot, unknown to the policy
        chunk, _ = client.act(obs, "pick up the cup")
    assert chunk.actions.shape[1] == ACTION_DIM


def test_bad_input_raises_policy_server_error_and_the_next_call_reconnects(server: PolicyServer) -> None:
    with PolicyClient(f"127.0.0.1:{server.bound_port}", api_key=API_KEY, timeout_s=60) as client:
        metadata = client.metadata
        wrong = Obs(make_obs(metadata).images, np.zeros(2, np.float32))
        with pytest.raises(PolicyServerError, match="state must have 6 values"):
            client.act(wrong, "pick up the cup")
        chunk, _ = client.act(make_obs(metadata), "pick up the cup")
        assert chunk.actions.shape[1] == ACTION_DIM
        assert client.reconnects == 1


def test_wrong_key_and_absent_server_raise_typed_errors(server: PolicyServer) -> None:
    with pytest.raises(PolicyServerError, match="refused the API key"):
        PolicyClient(f"ws://127.0.0.1:{server.bound_port}", api_key="nope", timeout_s=10).metadata  # noqa: B018
    nobody = PolicyClient(f"ws://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(PolicyUnavailable, match="cannot connect"):
        nobody.act(make_obs(server.metadata), "x")
    assert not nobody.healthy()


def test_a_late_reply_times_out_and_the_client_recovers(tiny_policy) -> None:
    gated = GatedPolicy(tiny_policy)
    srv = PolicyServer(gated, port=0)  # type: ignore[arg-type]
    with srv.run_in_thread() as port, PolicyClient(f"ws://127.0.0.1:{port}", timeout_s=0.5) as client:
        obs = make_obs(client.metadata)
        with pytest.raises(PolicyUnavailable, match=r"did not answer within 0\.5s"):
            client.act(obs, "pick up the cup")
        gated.release.set()
        client.timeout_s = 60
        chunk, _ = client.act(obs, "pick up the cup")
        assert chunk.actions.shape[1] == ACTION_DIM


def test_client_reconnects_after_the_worker_restarts_on_the_same_port(tiny_policy) -> None:
    port = free_port()
    client = PolicyClient(f"ws://127.0.0.1:{port}", timeout_s=60)
    try:
        with PolicyServer(tiny_policy, port=port).run_in_thread():
            first, _ = client.act(make_obs(client.metadata), "open the drawer")
        with pytest.raises(PolicyUnavailable):
            client.act(make_obs(tiny_policy.metadata), "open the drawer")
        with PolicyServer(tiny_policy, port=port).run_in_thread():
            second, _ = client.act(make_obs(tiny_policy.metadata), "open the drawer")
        assert first.actions.shape == second.actions.shape
        assert client.reconnects == 1
    finally:
        client.close()


def test_one_client_is_safe_to_share_between_threads(server: PolicyServer) -> None:
    client = PolicyClient(f"ws://127.0.0.1:{server.bound_port}", api_key=API_KEY, timeout_s=60)
    chunk_ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def robot(seed: int) -> None:
        try:
            for i in range(2):
                chunk, _ = client.act(make_obs(client.metadata, seed=seed * 10 + i), "wipe the table")
                with lock:
                    chunk_ids.append(chunk.chunk_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=robot, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    client.close()
    assert not errors
    assert sorted(chunk_ids) == list(range(8))
