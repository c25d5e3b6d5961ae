"""One state-only sim robot for the whole robots test session: building the MuJoCo model costs seconds."""

from __future__ import annotations

import pytest

from robots.sim.kitchen import SimKitchen
from robots.sim.tasks import TASKS


@pytest.fixture(scope="session")
def shared_blind_robot() -> SimKitchen:
    """No rendering: the expert and the safety layer only need simulator state. Tests set the task they need."""
    robot = SimKitchen(task=TASKS[0], render=False, seed=0)
    yield robot
    robot.close()
