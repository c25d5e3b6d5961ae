"""One fleet for the whole package, started the way users start it: `hearth serve-policy --ray --replicas 2`.

Starting Ray and Serve costs tens of seconds on the shared 2-core machine, so every fleet test shares it. The
policy is a random tiny π₀.₅ checkpoint shaped for the simulated kitchen, so the orchestrator test can drive a
robot with it. The test process joins the same local Ray instance (`address="auto"`) only to find replica
processes and read Serve's status.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO_ROOT, free_port, random_policy_for, spawn, wait_until

ray = pytest.importorskip(
    "ray", reason="Ray is not installed: pip install 'hearth[fleet]' (scripts/install.sh dev does)"
)
pytest.importorskip("ray.serve", reason="ray is installed without Serve: pip install 'hearth[fleet]'")

HEARTH = str(Path(sys.executable).parent / "hearth")
HORIZON = 10  # the real tiny architecture with a shorter chunk and fewer flow steps: 2 shared CPU cores
FLOW_STEPS = 4
FLEET_FLAGS = ["--ray", "--replicas", "2", "--max-batch", "4", "--batch-wait-ms", "10", "--cpus-per-replica", "1"]


@dataclass
class Fleet:
    url: str
    port: int
    policy: Any
    checkpoint: Path

    def args(self, checkpoint: Path, *extra: str) -> list[str]:
        """The serve-policy command line for this fleet with another checkpoint (a rollout)."""
        return [HEARTH, "serve-policy", "--checkpoint", str(checkpoint), "--port", str(self.port), *FLEET_FLAGS, *extra]


@pytest.fixture(scope="package")
def sim_robot():
    from robots.registry import make_robot

    robot = make_robot("sim-kitchen", camera_size=32, seed=0, render=False)
    yield robot
    robot.close()


def save_tiny(description: Any, folder: Path, seed: int) -> Any:
    policy = random_policy_for(description, "tiny", seed, action_horizon=HORIZON, num_steps=FLOW_STEPS)
    policy.save(folder)
    return policy


@pytest.fixture(scope="package")
def fleet(sim_robot, tmp_path_factory) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("fleet")
    checkpoint = folder / "tiny-v1"
    policy = save_tiny(sim_robot.describe(), checkpoint, seed=0)
    fleet = Fleet("", free_port(), policy, checkpoint)
    with spawn(fleet.args(checkpoint), folder / "serve-policy.log", env={"PYTHONPATH": str(REPO_ROOT)}) as process:
        found = wait_until(
            lambda: re.search(r"policy fleet listening on (ws://\S+)", process.log_text()) or not process.alive(),
            timeout=300,
            what="the fleet to print its URL",
        )
        assert process.alive(), process.log_text()[-3000:]
        fleet.url = found.group(1)
        ray.init(address="auto", namespace="serve", logging_level="WARNING")
        try:
            yield fleet
        finally:
            ray.shutdown()
            process.popen.send_signal(signal.SIGTERM)  # the command alone: it stops Serve and Ray itself
            try:
                process.popen.wait(timeout=60)
            finally:
                log = process.log_text()
                process.stop()  # anything left in its process group
        assert process.popen.returncode == 0 and "policy fleet stopped" in log, log[-3000:]
