"""One local Ray instance and one fleet (2 tiny CPU model replicas behind one ingress) for the whole package.

Starting Ray and Serve costs tens of seconds on the shared 2-core machine, so every fleet test shares it. The
policy is a random tiny π₀.₅ shaped for the simulated kitchen, so the orchestrator test can drive a robot with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port

ray = pytest.importorskip("ray", reason="Ray Serve is not installed: pip install 'hearth[fleet]' (scripts/install.sh dev does)")
pytest.importorskip("ray.serve", reason="ray is installed without Serve: pip install 'hearth[fleet]'")

HORIZON = 10  # the real tiny architecture with a shorter chunk and fewer flow steps: 2 shared CPU cores
FLOW_STEPS = 4


@dataclass
class Fleet:
    url: str
    port: int
    config: Any
    policy: Any
    checkpoint: Path


@pytest.fixture(scope="package")
def sim_robot():
    from robots.registry import make_robot

    robot = make_robot("sim-kitchen", camera_size=32, seed=0, render=False)
    yield robot
    robot.close()


def save_tiny(description: Any, folder: Path, seed: int) -> Any:
    from policy.inference import Pi05Policy

    policy = Pi05Policy.build_random(
        "tiny", camera_names=tuple(description.camera_names), state_names=description.state_names,
        action_names=description.action_names, control_hz=description.control_hz, seed=seed,
        robot_type=description.robot_type, robot_interface_version=description.interface_version,
        action_horizon=HORIZON, num_steps=FLOW_STEPS,
    )
    policy.save(folder)
    return policy


@pytest.fixture(scope="package")
def fleet(sim_robot, tmp_path_factory) -> Iterator[Fleet]:
    from ray import serve

    from policy.fleet.app import deploy
    from policy.fleet.config import FleetConfig, PolicySource

    checkpoint = tmp_path_factory.mktemp("fleet") / "tiny-v1"
    policy = save_tiny(sim_robot.describe(), checkpoint, seed=0)
    port = free_port()
    config = FleetConfig(
        policy=PolicySource(checkpoint=str(checkpoint)), replicas=2, port=port, max_batch=4, batch_wait_ms=10.0,
        health_check_period_s=1.0, cpus_per_replica=1.0,
    )
    url = deploy(config, num_cpus=4)
    try:
        yield Fleet(url, port, config, policy, checkpoint)
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
