"""The worker, driven by the unmodified openpi_client.WebsocketClientPolicy and raw WebSockets, on loopback."""

from __future__ import annotations

import http.client
import socket
import threading
from typing import Any

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from hearth_wire.codec import packb, unpackb
from policy.server import PolicyServer
from tests.support import wait_until

from .conftest import ACTION_DIM, API_KEY, GatedPolicy, hearth_request


def _http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode()
    finally:
        conn.close()


def _metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _raw(port: int, key: str | None = API_KEY):
    headers = {"Authorization": f"Api-Key {key}"} if key else None
    ws = connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None, additional_headers=headers, open_timeout=10)
    unpackb(ws.recv(timeout=10))  # metadata frame
    return ws


def test_openpi_client_gets_metadata_actions_and_timing(server: PolicyServer) -> None:
    client = WebsocketClientPolicy("127.0.0.1", server.bound_port, api_key=API_KEY)
    try:
        metadata = client.get_server_metadata()
        assert metadata["camera_names"] == ["head", "wrist"]
        assert metadata["action_horizon"] == server.spec.action_horizon
        assert len(metadata["action_names"]) == ACTION_DIM and metadata["mapping"] == "hearth"
        first = client.infer(hearth_request(metadata, seed=1))
        second = client.infer(hearth_request(metadata, seed=2))
    finally:
        client._ws.close()
    for reply in (first, second):
        actions = reply["actions"]
        assert isinstance(actions, np.ndarray) and actions.dtype == np.float32
        assert actions.shape == (metadata["action_horizon"], ACTION_DIM)
        assert np.all(np.isfinite(actions))
        assert reply["policy_timing"]["infer_ms"] > 0
        assert reply["server_timing"]["infer_ms"] >= reply["policy_timing"]["infer_ms"]
    assert "prev_total_ms" not in first["server_timing"]
    assert second["server_timing"]["prev_total_ms"] > 0
    assert not np.allclose(first["actions"], second["actions"])  # different observations, different chunks


def test_metadata_frame_names_the_robot_interface_the_policy_was_trained_on(tiny_policy) -> None:
    """Additive keys a remote agent checks against its robot before moving it (agent/compat.py)."""
    from policy.client import PolicyClient
    from policy.inference import Pi05Policy

    unknown = PolicyServer(tiny_policy, port=0).metadata
    assert unknown["robot_type"] == "" and unknown["robot_interface_version"] is None  # not recorded
    trained = {**tiny_policy.metadata, "robot_type": "panda_omron", "robot_interface_version": 2}
    kitchen = Pi05Policy(tiny_policy.model, tiny_policy.tokenizer, tiny_policy.norm_stats, trained, device="cpu")
    with PolicyServer(kitchen, port=0).run_in_thread() as port:
        client = PolicyClient(f"ws://127.0.0.1:{port}", timeout_s=30.0)
        try:
            frame = client.metadata
        finally:
            client.close()
    assert frame["robot_type"] == "panda_omron" and frame["robot_interface_version"] == 2


def test_health_and_metrics_endpoints(server: PolicyServer) -> None:
    status, _, body = _http_get(server.bound_port, "/healthz")
    assert (status, body) == (200, "OK\n")
    assert _http_get(server.bound_port, "/metrics")[0] == 401  # metrics need the key when keys are configured
    before = _metric(
        _http_get(server.bound_port, "/metrics", {"Authorization": f"Api-Key {API_KEY}"})[2],
        'hearth_policy_requests_total{kind="act",outcome="ok"}',
    )
    client = WebsocketClientPolicy("127.0.0.1", server.bound_port, api_key=API_KEY)
    try:
        client.infer(hearth_request(client.get_server_metadata()))
    finally:
        client._ws.close()
    status, content_type, text = _http_get(server.bound_port, "/metrics", {"Authorization": f"Api-Key {API_KEY}"})
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert _metric(text, 'hearth_policy_requests_total{kind="act",outcome="ok"}') == before + 1
    assert _metric(text, 'hearth_policy_batch_size_count{kind="act"}') >= 1
    assert _metric(text, 'hearth_policy_request_seconds_count{kind="act"}') >= 1
    assert "# TYPE hearth_policy_inference_seconds histogram" in text


def test_wrong_or_missing_api_key_is_refused_at_the_handshake(server: PolicyServer) -> None:
    for key in ("wrong", None):
        with pytest.raises(InvalidStatus) as info:
            WebsocketClientPolicy("127.0.0.1", server.bound_port, api_key=key)
        assert info.value.response.status_code == 401


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"unexpected": 1}, "unknown request keys ['unexpected']"),
        ({"state": np.zeros(3, np.float32)}, "state must have 6 values"),
        ({"state": np.ones(6, bool)}, "numeric"),
        ({"images": {"head": np.zeros((32, 32, 3), np.float64) + 7, "wrist": np.zeros((4, 4), np.uint8)}}, "HxWx3"),
        (
            {"images": {"head": np.zeros((4000, 10, 3), np.uint8), "wrist": np.zeros((8, 8, 3), np.uint8)}},
            "largest side",
        ),
    ],
)
def test_bad_input_gets_an_error_frame_then_close_1011_and_others_keep_working(
    server: PolicyServer, change: dict[str, Any], expected: str
) -> None:
    ws = _raw(server.bound_port)
    metadata = server.metadata
    ws.send(packb({**hearth_request(metadata), **change}))
    error = ws.recv(timeout=30)
    assert isinstance(error, str) and "bad request" in error
    assert expected in error
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=10)
    assert ws.close_code == 1011
    # the unmodified openpi client sees the same error as a RuntimeError, and a fresh client is served
    client = WebsocketClientPolicy("127.0.0.1", server.bound_port, api_key=API_KEY)
    try:
        with pytest.raises(RuntimeError, match="Error in inference server"):
            client.infer({**hearth_request(metadata), **change})
    finally:
        client._ws.close()
    client = WebsocketClientPolicy("127.0.0.1", server.bound_port, api_key=API_KEY)
    try:
        assert client.infer(hearth_request(metadata))["actions"].shape[1] == ACTION_DIM
    finally:
        client._ws.close()


def test_subtask_extension_returns_text(server: PolicyServer) -> None:
    ws = _raw(server.bound_port)
    try:
        ws.send(
            packb(
                {
                    **hearth_request(server.metadata, prompt="put the cup in the sink"),
                    "hearth/subtask": True,
                    "hearth/episode_id": "episode-42",
                }
            )
        )
        reply = unpackb(ws.recv(timeout=60))
    finally:
        ws.close()
    assert isinstance(reply["hearth/subtask"], str)
    assert reply["hearth/episode_id"] == "episode-42"
    assert "actions" not in reply
    assert reply["policy_timing"]["infer_ms"] > 0


def test_health_and_metrics_answer_while_inference_is_running(tiny_policy) -> None:
    gated = GatedPolicy(tiny_policy)
    srv = PolicyServer(gated, port=0)  # type: ignore[arg-type]
    with srv.run_in_thread() as port:
        replies: list[Any] = []
        client = WebsocketClientPolicy("127.0.0.1", port)
        worker = threading.Thread(
            target=lambda: replies.append(client.infer(hearth_request(srv.metadata))), daemon=True
        )
        worker.start()
        assert gated.entered.wait(timeout=30), "inference never started"
        # The model call is in progress (held at the gate): the event loop must still answer HTTP.
        assert _http_get(port, "/healthz")[:1] == (200,)
        status, _, text = _http_get(port, "/metrics")
        assert status == 200 and _metric(text, "hearth_policy_connections_open") == 1
        assert not replies
        gated.release.set()
        worker.join(timeout=60)
        client._ws.close()
        assert replies and replies[0]["actions"].shape == (srv.spec.action_horizon, ACTION_DIM)


def test_client_disconnect_mid_request_does_not_hurt_the_server(tiny_policy) -> None:
    gated = GatedPolicy(tiny_policy)
    srv = PolicyServer(gated, port=0)  # type: ignore[arg-type]
    with srv.run_in_thread() as port:
        ws = _raw(port, key=None)
        ws.send(packb(hearth_request(srv.metadata)))
        assert gated.entered.wait(timeout=30)
        ws.socket.shutdown(socket.SHUT_RDWR)  # vanish without a close frame, mid-request
        ws.socket.close()
        gated.release.set()
        wait_until(
            lambda: _metric(_http_get(port, "/metrics")[2], 'hearth_policy_errors_total{reason="disconnect"}') == 1,
            timeout=30,
            what="the disconnect to be counted",
        )
        client = WebsocketClientPolicy("127.0.0.1", port)
        try:
            assert client.infer(hearth_request(srv.metadata))["actions"].shape[1] == ACTION_DIM
        finally:
            client._ws.close()


def test_batches_form_and_one_bad_member_fails_alone(tiny_policy) -> None:
    """Requests queued together run as one act_batch; a request the model rejects gets its own error."""
    import asyncio

    from policy.mappings import PolicyRequest, WireObservation
    from policy.metrics import WorkerMetrics
    from policy.server import InferenceBatcher
    from policy.types import PolicyInputError

    from .conftest import make_obs

    metrics = WorkerMetrics()
    batcher = InferenceBatcher(tiny_policy, max_batch=4, batch_wait_s=0.5, metrics=metrics)

    def request(seed: int) -> PolicyRequest:
        obs = make_obs(tiny_policy.metadata, seed)
        return PolicyRequest("act", WireObservation(obs.images, obs.state), "wipe the table")

    async def scenario() -> list[Any]:
        good = [batcher.submit(request(seed)) for seed in range(3)]
        missing_camera = request(9)
        del missing_camera.observation.images["wrist"]  # past the mapping: only the model can reject it
        bad = batcher.submit(missing_camera)
        batcher.start()
        return await asyncio.wait_for(asyncio.gather(*good, bad, return_exceptions=True), timeout=120)

    try:
        results = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert isinstance(results[3], PolicyInputError)
    for result in results[:3]:
        assert result.actions.shape == (tiny_policy.metadata["action_horizon"], ACTION_DIM)
    # the first attempt was one batch of 4; after it failed, each request ran alone
    assert metrics.value("hearth_policy_batch_size_count", kind="act") == 3
    assert metrics.value("hearth_policy_batch_size_sum", kind="act") == 3


def test_concurrent_clients_are_batched_through_the_server(tiny_policy) -> None:
    gated = GatedPolicy(tiny_policy)
    srv = PolicyServer(gated, port=0, max_batch=8, batch_wait_ms=1000)  # type: ignore[arg-type]
    with srv.run_in_thread() as port:
        clients = [WebsocketClientPolicy("127.0.0.1", port) for _ in range(4)]
        replies: list[Any] = []
        lock = threading.Lock()

        def ask(client: WebsocketClientPolicy, seed: int) -> None:
            reply = client.infer(hearth_request(srv.metadata, seed=seed))
            with lock:
                replies.append(reply)

        # First request occupies the model (held at the gate); the next three queue up behind it together.
        threads = [threading.Thread(target=ask, args=(clients[0], 0), daemon=True)]
        threads[0].start()
        assert gated.entered.wait(timeout=30)
        for i in (1, 2, 3):
            threads.append(threading.Thread(target=ask, args=(clients[i], i), daemon=True))
            threads[-1].start()
        wait_until(lambda: srv.batcher._queue.qsize() == 3, timeout=30, what="three queued requests")
        gated.release.set()
        for thread in threads:
            thread.join(timeout=60)
        for client in clients:
            client._ws.close()
    sizes = sorted(reply["server_timing"]["batch_size"] for reply in replies)
    assert sizes == [1.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize("robot", ["libero", "aloha"])
def test_openpi_example_robot_keys_are_served(robot: str) -> None:
    """LIBERO and ALOHA requests exactly as openpi's example clients send them (DROID: test_serve_policy_cli)."""
    from policy.inference import Pi05Policy
    from policy.mappings import mapping_defaults

    cameras, state_dim, action_dim = mapping_defaults(robot)
    policy = Pi05Policy.build_random(
        "tiny",
        camera_names=cameras,
        state_names=[f"s{i}" for i in range(state_dim)],
        action_names=[f"a{i}" for i in range(action_dim)],
        seed=1,
        action_horizon=10,
        num_steps=2,
    )
    rng = np.random.default_rng(3)

    def image(chw: bool = False) -> np.ndarray:
        hwc = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
        return np.ascontiguousarray(np.transpose(hwc, (2, 0, 1))) if chw else hwc

    if robot == "libero":
        obs = {
            "observation/image": image(),
            "observation/wrist_image": image(),
            "observation/state": rng.normal(size=8),
            "prompt": "put the bowl on the plate",
        }
    else:  # ALOHA: CHW images under "images", no prompt (the server's default prompt applies)
        obs = {
            "images": {
                "cam_high": image(True),
                "cam_low": image(True),
                "cam_left_wrist": image(True),
                "cam_right_wrist": image(True),
            },
            "state": rng.normal(size=14),
        }
    srv = PolicyServer(policy, port=0, mapping=robot, default_prompt="fold the towel")
    with srv.run_in_thread() as port:
        client = WebsocketClientPolicy("127.0.0.1", port)
        try:
            metadata = client.get_server_metadata()
            reply = client.infer(obs)
        finally:
            client._ws.close()
    assert metadata["mapping"] == robot
    assert reply["actions"].shape == (10, action_dim)
    if robot == "aloha":
        assert metadata["reset_pose"] == [0.0, -1.5, 1.5, 0.0, 0.0, 0.0]  # what openpi's ALOHA client reads
