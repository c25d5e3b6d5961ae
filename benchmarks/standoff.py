"""Put the sim robot where a "go to the X" leaves it, for benchmarks that query the policy or render from there."""

from __future__ import annotations

import math

import numpy as np

# one task per object a task picks first ("clear the table" starts with the can, like "put the can in the sink")
FIRST_PICK_TASKS = (
    "put the can in the sink",
    "put the milk on the shelf",
    "put the fruit in the bowl",
    "bring the bread to the table",
    "put the cup in the sink",
)


def place_at_standoff(robot, furniture: str, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Base at ``furniture``'s stand-off moved ``shift`` m along it, facing it, torso at its height, arm tucked.

    Returns the unit vectors along the furniture (to the base's left) and toward it, in the world's x, y.
    """
    from robots.sim.expert import HOME_ARM, TORSO_FOR
    from robots.sim.kitchen import standoff_pose

    x, y, yaw = standoff_pose(furniture)
    along = np.array([-math.sin(yaw), math.cos(yaw)])
    toward = np.array([math.cos(yaw), math.sin(yaw)])
    robot._set_base_pose(x + shift * along[0], y + shift * along[1], yaw)
    robot.data.qpos[robot._torso_qpos] = TORSO_FOR[furniture]
    robot.data.qpos[robot._arm_qpos] = HOME_ARM
    robot._ctrl_hold()
    robot._mujoco.mj_forward(robot.model, robot.data)
    return along, toward


def settle(robot, arm: np.ndarray | None = None, ticks: int = 5) -> None:
    """Hold the current pose (with ``arm`` joint targets, default the measured ones) while the controllers settle."""
    state = robot.state()
    hold = np.concatenate([state[:7] if arm is None else arm, [0.0], state[8:12]]).astype(np.float32)
    for _ in range(ticks):
        robot.act(hold)
