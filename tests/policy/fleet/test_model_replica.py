"""The model deployment's own logic, in this process (no Ray cluster): batching with a bad member, health, and
rollouts that must keep the robot interface."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from policy.fleet.config import FleetConfig, PolicySource
from policy.fleet.model import PolicyModel, run_batch
from policy.mappings import PolicyRequest, WireObservation
from policy.types import PolicyInputError
from tests.policy.fleet.conftest import HORIZON, save_tiny


def robot(action_dim: int) -> SimpleNamespace:
    """The parts of a RobotDescription a checkpoint records (no simulator needed for these tests)."""
    return SimpleNamespace(
        camera_names=("head", "wrist"),
        state_names=[f"joint_{i}" for i in range(6)],
        action_names=[f"target_{i}" for i in range(action_dim)],
        control_hz=20.0,
        robot_type="test_arm",
        interface_version=1,
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("replica")
    save_tiny(robot(5), folder / "v1", seed=0)
    save_tiny(robot(5), folder / "v2", seed=1)
    save_tiny(robot(6), folder / "other-robot", seed=0)  # a robot with one more actuator
    return folder


def request(policy, seed: int, side: int = 32) -> PolicyRequest:
    rng = np.random.default_rng(seed)
    images = {n: rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for n in policy.metadata["camera_names"]}
    state = rng.normal(size=len(policy.metadata["state_names"])).astype(np.float32)
    return PolicyRequest("act", WireObservation(images, state), "pick up the can")


def test_a_bad_member_fails_alone_and_the_rest_of_the_batch_gets_chunks(checkpoints) -> None:
    policy = PolicySource(checkpoint=str(checkpoints / "v1")).build("cpu")
    good = [request(policy, i) for i in range(3)]
    bad = request(policy, 9)
    bad.observation.state = bad.observation.state[:2]  # wrong state size
    results = run_batch(policy, [good[0], bad, good[1], good[2]])
    assert isinstance(results[1], PolicyInputError)
    for result in (results[0], results[2], results[3]):
        assert result.actions.shape == (HORIZON, len(policy.metadata["action_names"])) and result.batch_size == 1


def test_rollout_swaps_the_policy_keeps_health_and_refuses_another_robot_interface(checkpoints) -> None:
    replica = PolicyModel("cpu", max_batch=4, batch_wait_ms=1.0)
    with pytest.raises(RuntimeError, match="no policy loaded"):
        replica.check_health()
    asyncio.run(replica.reconfigure({"policy": {"checkpoint": str(checkpoints / "v1")}}))
    replica.check_health()
    assert replica.version == "v1"
    asyncio.run(replica.reconfigure({"policy": {"checkpoint": str(checkpoints / "v2")}}))
    assert replica.version == "v2"
    with pytest.raises(ValueError, match="robot interface"):
        asyncio.run(replica.reconfigure({"policy": {"checkpoint": str(checkpoints / "other-robot")}}))
    assert replica.version == "v2"  # still serving the last good checkpoint (serving itself: test_fleet.py)
    assert run_batch(replica.policy, [request(replica.policy, 0)])[0].actions.shape[0] == HORIZON


def test_a_replica_builds_its_fast_path_before_it_serves(checkpoints, monkeypatch) -> None:
    """With the fast path on (as on CUDA), reconfigure warms every batch bucket up to max_batch before the swap."""
    monkeypatch.setenv("HEARTH_FAST_PATH", "1")
    replica = PolicyModel("cpu", max_batch=2, batch_wait_ms=1.0)
    asyncio.run(replica.reconfigure({"policy": {"checkpoint": str(checkpoints / "v1")}}))
    fast = replica.policy.fast
    assert fast is not None and fast.parts_built > 0
    built = fast.parts_built
    assert run_batch(replica.policy, [request(replica.policy, 0)])[0].actions.shape[0] == HORIZON
    assert fast.parts_built == built  # the request found its shapes ready


def test_autoscaling_and_validation() -> None:
    source = {"random_preset": "tiny"}
    config = FleetConfig(policy=source, min_replicas=1, max_replicas=4, target_ongoing_requests=2)
    assert config.autoscaling == {
        "min_replicas": 1,
        "max_replicas": 4,
        "initial_replicas": 1,
        "target_ongoing_requests": 2,
    }
    assert FleetConfig(policy=source, replicas=3).autoscaling is None
    with pytest.raises(ValueError, match="both min_replicas and max_replicas"):
        FleetConfig(policy=source, max_replicas=4)
    with pytest.raises(ValueError, match="exactly one of checkpoint or random_preset"):
        PolicySource()
