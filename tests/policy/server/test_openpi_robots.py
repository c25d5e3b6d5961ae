"""openpi's DROID and LIBERO clients against the worker: sizes checked at start, replies cut to the robot's action
size (as openpi's DroidOutputs / LiberoOutputs do), channel-first images accepted, error echoes capped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from typer.testing import CliRunner

from agent.cli import app
from policy.inference import Pi05Policy
from policy.mappings import PolicySpec, get_mapping
from policy.server import PolicyServer


def _policy(state_dim: int, action_dim: int) -> Pi05Policy:
    return Pi05Policy.build_random(
        "tiny",
        camera_names=("agentview", "wrist"),
        state_names=[f"s{i}" for i in range(state_dim)],
        action_names=[f"a{i}" for i in range(action_dim)],
    )


def _libero_request(rng: np.random.Generator, chw: bool) -> dict:
    shape = (3, 64, 64) if chw else (64, 64, 3)
    return {
        "observation/image": rng.integers(0, 256, shape, dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 256, shape, dtype=np.uint8),
        "observation/state": rng.normal(size=8),
        "prompt": "put the bowl on the plate",
    }


def test_libero_client_gets_seven_actions_from_an_eight_action_policy_and_may_send_chw_images() -> None:
    server = PolicyServer(_policy(8, 8), host="127.0.0.1", port=0, mapping="libero")
    rng = np.random.default_rng(0)
    with server.run_in_thread() as port:
        client = WebsocketClientPolicy("127.0.0.1", port)
        try:
            for chw in (False, True):
                reply = client.infer(_libero_request(rng, chw))
                assert reply["actions"].shape == (client.get_server_metadata()["action_horizon"], 7)
        finally:
            client._ws.close()


def test_a_huge_map_of_unknown_keys_gets_a_short_error() -> None:
    server = PolicyServer(_policy(8, 8), host="127.0.0.1", port=0, mapping="libero")
    junk = {f"junk/{i:06d}/" + "x" * 80: 0 for i in range(20_000)}  # ~2 MB of keys
    with server.run_in_thread() as port:
        client = WebsocketClientPolicy("127.0.0.1", port)
        try:
            with pytest.raises(Exception) as raised:
                client.infer({**_libero_request(np.random.default_rng(1), False), **junk})
        finally:
            client._ws.close()
    message = str(raised.value)
    assert "unknown request keys" in message and "(+19992 more)" in message
    assert len(message) < 2000


@pytest.mark.parametrize(
    ("mapping", "state_dim", "action_dim", "match"),
    [
        ("libero", 12, 12, "sends a 8-value state .* this policy takes 12 state values"),
        ("droid", 8, 7, "executes 8 action values per step, but this policy predicts only 7"),
        ("libero", 8, 6, "executes 7 action values per step, but this policy predicts only 6"),
    ],
)
def test_a_policy_that_cannot_serve_the_robot_is_refused_with_the_sizes(mapping, state_dim, action_dim, match) -> None:
    spec = PolicySpec(camera_names=["a", "b"], state_dim=state_dim, action_dim=action_dim, action_horizon=10)
    with pytest.raises(ValueError, match=match):
        get_mapping(mapping, spec)


def test_serve_policy_refuses_at_start_a_checkpoint_that_cannot_serve_the_mapping(tmp_path: Path) -> None:
    _policy(12, 12).save(tmp_path / "ckpt")  # shaped like the sim kitchen robot: 12 state values
    result = CliRunner().invoke(
        app, ["serve-policy", "--checkpoint", str(tmp_path / "ckpt"), "--mapping", "libero", "--port", "0"]
    )
    assert result.exit_code == 2
    assert "cannot serve --mapping libero" in result.output and "takes 12 state values" in result.output
    assert "Traceback" not in result.output


def test_openpi_episode_control_messages_are_acknowledged_like_openpi_does() -> None:
    """openpi's LIBERO example calls client.episode_start(...) / episode_end(...) around each rollout; the frames
    are sent here exactly as that client packs them."""
    from openpi_client import msgpack_numpy

    server = PolicyServer(_policy(8, 8), host="127.0.0.1", port=0, mapping="libero")
    with server.run_in_thread() as port:
        client = WebsocketClientPolicy("127.0.0.1", port)
        try:

            def control(message: dict) -> dict:
                client._ws.send(client._packer.pack(message))
                return msgpack_numpy.unpackb(client._ws.recv())

            start = {
                "__ctrl__": "episode_start",
                "__experiment__": "libero_spatial",
                "__task__": "t",
                "__episode_id__": 0,
            }
            assert control(start) == {"__ack__": "episode_start"}
            assert client.infer(_libero_request(np.random.default_rng(2), False))["actions"].shape[1] == 7
            assert control({"__ctrl__": "episode_end", "__success__": True}) == {"__ack__": "episode_end"}
            assert control({"__ctrl__": "something_new"}) == {"__ack__": "ignored"}
        finally:
            client._ws.close()
