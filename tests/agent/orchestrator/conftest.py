"""Shared, expensive pieces for the orchestrator tests: one simulated kitchen and one tiny random policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import random_policy_for


@pytest.fixture(scope="package")
def sim_robot():
    """One SimKitchen for the package (building it costs seconds); each runtime wraps it in its own SafeRobot.

    Real MuJoCo physics, but blank camera images: CPU rendering is the most expensive part of a tick on the
    shared 2-core machine and these tests are about the loop (the `hearth run` test renders for real).
    """
    from robots.registry import make_robot

    robot = make_robot("sim-kitchen", camera_size=32, seed=0, render=False)
    yield robot
    robot.close()


@pytest.fixture(scope="package")
def tiny_policy(sim_robot):
    """A random tiny π₀.₅ whose cameras and state/action names match the simulated robot."""
    return random_policy_for(sim_robot.describe())


@pytest.fixture(scope="package")
def worker_url(tiny_policy) -> Iterator[str]:
    """The real policy worker (WebSocket, msgpack) serving the tiny policy on a loopback port, in a thread."""
    from policy.server import PolicyServer

    server = PolicyServer(tiny_policy, host="127.0.0.1", port=0)
    with server.run_in_thread() as port:
        yield f"ws://127.0.0.1:{port}"
