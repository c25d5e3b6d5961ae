"""The safety layer on the real simulated robot: clamps, limits, NaN rejection, latched e-stop, watchdog, workspace."""

from __future__ import annotations

import time

import numpy as np
import pytest

from robots.base import Robot
from robots.config import load_robot_config
from robots.safety import SafeRobot, SafetyLimits, WorkspaceBox
from robots.sim.expert import ScriptedExpert
from robots.sim.kitchen import ACTION_NAMES, SimKitchen
from robots.types import Observation, RobotDescription, SafetyEvent
from tests.support import wait_until

J1 = ACTION_NAMES.index("arm_joint1")
BX, BY, BYAW = (ACTION_NAMES.index(n) for n in ("base_x", "base_y", "base_yaw"))
BASE = [BX, BY, BYAW]


def ahead(robot: Robot, sim: SimKitchen, metres: float) -> np.ndarray:
    """A "stay here" action whose base target lies ``metres`` straight ahead of the base."""
    action = robot.hold_action()
    x, y, yaw = sim.base_pose()
    action[BX], action[BY] = x + metres * np.cos(yaw), y + metres * np.sin(yaw)
    return action


class Recording(Robot):
    """Passes everything to the real sim robot and remembers what actually reached it.

    ``close`` leaves the shared module-scoped sim open (SafeRobot.close closes what it wraps).
    """

    def __init__(self, robot: SimKitchen) -> None:
        self.robot = robot
        self.applied: list[np.ndarray] = []

    def describe(self) -> RobotDescription:
        return self.robot.describe()

    def reset(self, seed: int | None = None) -> Observation:
        self.applied.clear()
        return self.robot.reset(seed)

    def observe(self) -> Observation:
        return self.robot.observe()

    def current_state(self) -> np.ndarray:
        return self.robot.current_state()

    def hold_action(self) -> np.ndarray:
        return self.robot.hold_action()

    def task_success(self) -> bool | None:
        return self.robot.task_success()

    def act(self, action: np.ndarray) -> None:
        self.applied.append(np.array(action, dtype=np.float64))
        self.robot.act(action)

    def close(self) -> None:
        pass


@pytest.fixture
def sim(shared_blind_robot: SimKitchen) -> SimKitchen:
    return shared_blind_robot


@pytest.fixture
def safe(sim: SimKitchen):
    events: list[SafetyEvent] = []
    inner = Recording(sim)
    robot = SafeRobot(inner, watchdog_timeout_s=30.0, on_event=events.append)
    robot.reset(0)
    yield robot, inner, events
    robot.close()


def kinds(events: list[SafetyEvent]) -> list[str]:
    return [e.kind for e in events]


def test_over_limit_joint_target_is_clamped_and_reported(safe) -> None:
    robot, inner, events = safe
    action = inner.hold_action()
    action[J1] = 10.0  # far beyond the Panda's 2.8973 rad
    for _ in range(60):
        robot.act(action)
    applied = np.array([a[J1] for a in inner.applied])
    assert applied.max() <= 2.8973 + 1e-9
    assert "clamp_position" in kinds(events)
    clamp = next(e for e in events if e.kind == "clamp_position")
    assert clamp.details["names"] == ["arm_joint1"] and clamp.details["requested"] == [10.0]
    # the velocity limit spreads the move over many ticks: never more than 2.5 rad/s * 0.05 s per tick
    steps = np.abs(np.diff(applied))
    assert steps.max() <= 2.5 / 20.0 + 1e-9
    assert "limit_velocity" in kinds(events)
    assert applied[-1] == pytest.approx(2.8973, abs=1e-6)


def test_nan_action_is_rejected_before_mujoco_and_the_robot_holds(safe) -> None:
    robot, inner, events = safe
    moving = ahead(inner, inner.robot, 0.15)
    for _ in range(5):
        robot.act(moving)
    bad = moving.copy()
    bad[J1] = np.nan
    bad[BY] = np.inf
    robot.act(bad)
    assert kinds(events)[-1] == "nonfinite_action"
    assert set(events[-1].details["names"]) == {"arm_joint1", "base_y"}
    assert all(np.all(np.isfinite(a)) for a in inner.applied)
    # holding means the base's target is where it stands
    np.testing.assert_allclose(inner.applied[-1][BASE], inner.robot.state()[9:12], atol=0.03)
    assert np.all(np.isfinite(inner.robot.data.qpos))


def test_estop_latches_until_reset(safe) -> None:
    robot, inner, events = safe
    robot.estop("test")
    assert robot.estopped and kinds(events)[-1] == "estop"
    start = inner.robot.base_pose()
    drive = ahead(inner, inner.robot, 0.5)
    for _ in range(20):
        robot.act(drive)
    assert np.allclose(inner.robot.base_pose()[:2], start[:2], atol=0.01)
    robot.reset_estop()
    assert not robot.estopped and kinds(events)[-1] == "estop_reset"
    for _ in range(20):
        robot.act(drive)
    assert np.linalg.norm(inner.robot.base_pose()[:2] - start[:2]) > 0.4


def test_base_target_lead_is_limited(safe) -> None:
    robot, inner, events = safe
    far = ahead(inner, inner.robot, 3.0)
    far[BYAW] += 2.0
    robot.act(far)
    pose = inner.robot.state()[9:12]
    applied = inner.applied[-1]
    assert np.hypot(applied[BX] - pose[0], applied[BY] - pose[1]) <= 0.6 + 0.02
    assert abs(applied[BYAW] - pose[2]) <= 0.8 + 0.02
    assert "limit_base_lead" in kinds(events)


def test_workspace_box_stops_the_base_at_its_edge(sim: SimKitchen) -> None:
    sim.reset(0)
    x, y, _ = sim.base_pose()
    box = WorkspaceBox(x_min=x - 0.3, x_max=x + 0.3, y_min=y - 0.3, y_max=y + 0.3)
    events: list[SafetyEvent] = []
    robot = SafeRobot(Recording(sim), SafetyLimits(workspace=box), watchdog_timeout_s=30.0, on_event=events.append)
    try:
        robot.reset(0)
        for _ in range(60):  # chasing a target 0.5 m ahead for 3 s would leave the box by far
            robot.act(ahead(sim, sim, 0.5))
        bx, by, _ = sim.base_pose()
        assert box.x_min - 0.02 <= bx <= box.x_max + 0.02 and box.y_min - 0.02 <= by <= box.y_max + 0.02
        assert "workspace" in kinds(events)
    finally:
        robot.close()


def test_watchdog_is_armed_by_the_first_action_and_stops_the_robot(sim: SimKitchen) -> None:
    events: list[SafetyEvent] = []
    inner = Recording(sim)
    robot = SafeRobot(inner, watchdog_timeout_s=0.2, on_event=events.append)
    try:
        robot.reset(0)
        time.sleep(0.5)
        assert "watchdog" not in kinds(events)  # not armed before the first action
        robot.act(ahead(inner, sim, 0.3))
        wait_until(lambda: "watchdog" in kinds(events), timeout=10.0, what="watchdog event")
        np.testing.assert_allclose(inner.applied[-1][BASE], sim.state()[9:12], atol=0.05)  # target = where it is
        fired = kinds(events).count("watchdog")
        time.sleep(0.5)
        assert kinds(events).count("watchdog") == fired  # fires once, re-armed only by the next action
    finally:
        robot.close()


def test_limits_naming_unknown_actions_are_rejected(sim: SimKitchen) -> None:
    with pytest.raises(ValueError, match="unknown action"):
        SafeRobot(sim, SafetyLimits(position_upper={"elbow": 1.0}))


def test_wrong_action_shape_is_a_clear_error(safe) -> None:
    robot, inner, _ = safe
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        robot.act(np.zeros(3))
    assert inner.applied == []


def test_expert_still_succeeds_through_the_safety_layer(sim: SimKitchen) -> None:
    sim.set_task("put the can in the sink")
    events: list[SafetyEvent] = []
    limits = load_robot_config("sim-kitchen").safety.limits  # what `make demo` and `hearth run` deploy
    robot = SafeRobot(Recording(sim), limits=limits, watchdog_timeout_s=30.0, on_event=events.append)
    try:
        robot.reset(4)
        expert = ScriptedExpert(robot, seed=4)  # finds the simulator inside the wrappers
        for _ in range(700):
            action, _ = expert.act()
            robot.act(action)
            if expert.done:
                break
        assert robot.task_success() is True
        assert events == []  # the deployed limits never change what a smooth, in-range expert commands
    finally:
        robot.close()
