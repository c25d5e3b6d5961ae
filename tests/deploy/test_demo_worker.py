"""`hearth demo --random-preset tiny` serves random weights shaped for the sim robot (before, the worker took 8 state
values while the robot sends 12, and every task paused at once: "state must have 8 values, got 12")."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from agent.commands.demo import stack_services
from agent.compat import describe_robot
from tests.support import free_port, spawn, wait_until


def test_the_demo_worker_with_a_random_preset_takes_the_sim_robots_state_and_actions(tmp_path: Path) -> None:
    port = free_port()
    worker = next(
        s
        for s in stack_services(["--random-preset", "tiny"], port, free_port(), free_port())
        if s.name == "policy-worker"
    )
    robot = describe_robot("sim-kitchen")
    with spawn(worker.argv, tmp_path / "worker.log") as process:
        wait_until(
            lambda: re.search(r"listening on ws://", process.log_text()) or not process.alive(),
            timeout=180,
            what="the demo's policy worker",
        )
        assert process.alive(), process.log_text()
        client = WebsocketClientPolicy("127.0.0.1", port)
        try:
            metadata = client.get_server_metadata()
            rng = np.random.default_rng(0)
            reply = client.infer(
                {
                    "images": {name: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for name in robot.camera_names},
                    "state": np.zeros(len(robot.state_names), np.float32),
                    "prompt": "go to the counter",
                }
            )
        finally:
            client._ws.close()
    assert list(metadata["state_names"]) == list(robot.state_names)
    assert reply["actions"].shape[1] == len(robot.action_names)
