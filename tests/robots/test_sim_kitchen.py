"""The simulated household: determinism, rendering (also from another thread), tasks, expert, success checks."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from robots.registry import UnknownRobotError, available_robots, make_robot
from robots.sim.expert import ScriptedExpert, start_near
from robots.sim.kitchen import (
    ACTION_NAMES,
    FACING,
    MAX_BASE_SPEED,
    REACH,
    STATE_NAMES,
    SimKitchen,
    in_work_zone,
    reach_pose,
    standoff_pose,
    wrap_angle,
)
from robots.sim.tasks import FURNITURE_OF, TASK_SPECS, TASKS


@pytest.fixture
def blind(shared_blind_robot: SimKitchen) -> SimKitchen:
    """A robot without rendering: the expert only needs simulator state, and this keeps the suite fast."""
    return shared_blind_robot


@pytest.fixture(scope="module")
def seeing() -> SimKitchen:
    robot = make_robot("sim-kitchen", task=TASKS[0], camera_size=64, cameras=("head", "wrist", "third"), seed=0)
    yield robot
    robot.close()


def run_expert(robot: SimKitchen, seed: int, noise: float = 0.0, max_ticks: int = 900):
    robot.reset(seed)
    expert = ScriptedExpert(robot, noise=noise, seed=seed)
    labels, progress, perturbed = [], [], 0
    expert.recorded = []  # the clean actions, what a DART collector records
    for _ in range(max_ticks):
        action, label = expert.act()
        expert.recorded.append(expert.last_clean_action.copy())
        perturbed += int(not np.allclose(action, expert.last_clean_action))
        robot.act(action)
        labels.append(label)
        progress.append(robot.task_progress())
        if expert.done:
            break
    return expert, labels, progress, perturbed


def test_registry_knows_sim_kitchen_and_rejects_unknown_names() -> None:
    assert "sim-kitchen" in available_robots()
    with pytest.raises(UnknownRobotError, match="sim-kitchen"):
        make_robot("no-such-robot")


def test_describe_matches_observation_and_action_space(seeing: SimKitchen) -> None:
    desc = seeing.describe()
    assert desc.action_names == ACTION_NAMES and len(desc.actions) == 12
    assert desc.state_names == STATE_NAMES
    assert desc.camera_names == ["head", "wrist", "third"]
    assert desc.control_hz == 20.0
    assert desc.tasks == TASKS and len(TASKS) >= 4
    obs = seeing.observe()
    assert set(obs.images) == {"head", "wrist", "third"}
    for image in obs.images.values():
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert image.std() > 5.0  # a real rendered scene, not a blank frame
    assert obs.state.shape == (len(desc.state),)
    for value, spec in zip(obs.state, desc.state, strict=True):
        assert spec.lower - 1e-6 <= value <= spec.upper + 1e-6, spec.name


def test_reset_is_deterministic_per_seed(seeing: SimKitchen) -> None:
    first = seeing.reset(7)
    objects_first = {n: seeing.object_position(n) for n in seeing.object_names}
    second = seeing.reset(7)
    objects_second = {n: seeing.object_position(n) for n in seeing.object_names}
    np.testing.assert_array_equal(first.state, second.state)
    for name in objects_first:
        np.testing.assert_array_equal(objects_first[name], objects_second[name])
    for cam in first.images:
        np.testing.assert_array_equal(first.images[cam], second.images[cam])
    other = seeing.reset(8)
    assert not np.allclose(other.state, first.state)


def test_observe_renders_from_another_thread(seeing: SimKitchen) -> None:
    seeing.reset(1)
    here = seeing.observe()
    result: dict[str, object] = {}

    def control_thread() -> None:
        try:
            result["obs"] = seeing.observe()
        except Exception as exc:  # surfaced below with its message
            result["error"] = exc

    thread = threading.Thread(target=control_thread)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    there = result["obs"]
    back_here = seeing.observe()  # and the constructor's thread can still render afterwards
    for cam in here.images:
        np.testing.assert_array_equal(here.images[cam], there.images[cam])  # type: ignore[attr-defined]
        np.testing.assert_array_equal(here.images[cam], back_here.images[cam])


def test_act_rejects_bad_actions_before_mujoco(blind: SimKitchen) -> None:
    blind.reset(0)
    before = blind.data.qpos.copy()
    bad = blind.hold_action()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        blind.act(bad)
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        blind.act(np.zeros(5))
    np.testing.assert_array_equal(blind.data.qpos, before)


def test_unknown_task_is_a_clear_error_and_known_ones_are_matched_leniently(blind: SimKitchen) -> None:
    with pytest.raises(ValueError, match="known tasks"):
        blind.set_task("juggle the plates")
    blind.set_task("  Put the Fruit in the bowl. ")
    assert blind.task == "put the fruit in the bowl"


def test_base_goes_to_its_pose_target_and_holds_it(blind: SimKitchen) -> None:
    blind.reset(2)
    x0, y0, yaw0 = blind.base_pose()
    heading = np.array([np.cos(yaw0), np.sin(yaw0)])
    target = blind.hold_action()
    target[9:11] = np.array([x0, y0]) + 0.4 * heading  # 0.4 m straight ahead
    target[11] = blind.state()[11] + 0.3  # and turn 0.3 rad left
    for _ in range(40):  # 2 s
        blind.act(target)
    x1, y1, yaw1 = blind.base_pose()
    assert np.hypot(x1 - target[9], y1 - target[10]) < 0.01
    assert abs(wrap_angle(yaw1 - yaw0 - 0.3)) < 0.01
    hold = blind.hold_action()
    np.testing.assert_allclose(hold[9:12], blind.state()[9:12])
    for _ in range(20):  # "stay here" is the measured pose: no drift
        blind.act(hold)
    assert np.hypot(*(blind.base_pose()[:2] - np.array([x1, y1]))) < 0.005


def test_a_far_target_moves_at_the_speed_limit(blind: SimKitchen) -> None:
    blind.reset(2)
    x0 = blind.base_pose()[0]
    target = blind.hold_action()
    target[9] = x0 + 5.0  # far away: full speed toward it, never faster
    for _ in range(10):
        blind.act(target)
    speed = float(np.linalg.norm(blind.data.qvel[blind._base_dof[:2]]))
    assert 0.6 < speed <= MAX_BASE_SPEED + 0.05


def test_work_zone_and_reach_pose_geometry() -> None:
    for furniture in ("table", "counter", "shelf"):
        pose = standoff_pose(furniture)
        assert in_work_zone(pose, furniture)
        x, y, yaw = pose
        assert not in_work_zone((x - 0.6 * np.cos(yaw), y - 0.6 * np.sin(yaw), yaw), furniture)  # too far back
        assert not in_work_zone((x, y, yaw + 1.0), furniture)  # not facing it
        px, py = x + REACH * np.cos(yaw), y + REACH * np.sin(yaw)
        np.testing.assert_allclose(reach_pose(furniture, px, py), pose, atol=1e-9)


def test_expert_solves_tasks_that_start_mid_task(blind: SimKitchen) -> None:
    for task, seed in (("put the milk on the shelf", 5), ("bring the bread to the table", 6)):
        blind.set_task(task)
        blind.reset(seed)
        start_near(blind, FURNITURE_OF[blind.spec.moves[0].source], np.random.default_rng(seed))
        expert = ScriptedExpert(blind, noise=0.5, seed=seed)
        labels = []
        for _ in range(900):
            action, label = expert.act()
            labels.append(label)
            blind.act(action)
            if expert.done:
                break
        assert blind.task_success(), (task, labels[-1])
        assert labels[0] == blind.spec.subtasks[1]  # already at the furniture: the pick comes first


def test_a_line_up_start_keeps_the_hand_hovering_until_the_base_has_lined_up(blind: SimKitchen) -> None:
    """The line-up demonstrations: beside the object with the arm already at hover, the expert drives the base
    under the hand first and only then descends and grasps (the hand never starts down while the base is off)."""
    for task, seed in (("put the can in the sink", 705), ("put the milk on the shelf", 706)):
        blind.set_task(task)
        blind.reset(seed)
        start_near(blind, FURNITURE_OF[blind.spec.moves[0].source], np.random.default_rng(seed), heading_spread=0.2)
        expert = ScriptedExpert(blind, seed=seed)
        expert.start_with_arm_at_hover()
        obj = blind.spec.moves[0].obj
        hand_z = blind.grip_pose()[0][2]
        errors, labels = [], []
        while blind.held_object != obj and len(labels) < 300:
            action, label = expert.act()
            labels.append(label)
            p = blind.object_position(obj)
            gx, gy, _ = reach_pose(FURNITURE_OF[blind.spec.moves[0].source], p[0], p[1])
            x, y, _ = blind.base_pose()
            errors.append(np.hypot(x - gx, y - gy))
            if blind.grip_pose()[0][2] < hand_z - 0.04:  # the hand is on its way down (it hovers 12 cm up)
                break
            blind.act(action)
        assert set(labels) == {blind.spec.subtasks[1]}
        assert errors[0] > 0.05 and errors[-1] < 0.02, (errors[0], errors[-1])


@pytest.mark.parametrize("spec", TASK_SPECS, ids=[s.text for s in TASK_SPECS])
def test_expert_solves_each_task_with_paper_style_labels(blind: SimKitchen, spec) -> None:
    blind.set_task(spec.text)
    for seed in (0, 1) if len(spec.moves) == 1 else (0,):
        blind.reset(seed)
        assert blind.task_success() is False
        assert blind.task_progress() == 0.0
        expert, labels, progress, _ = run_expert(blind, seed)
        assert expert.done and not expert.failed
        assert blind.task_success() is True
        assert blind.task_progress() == 1.0
        assert labels[-1] == "done"
        distinct = [label for i, label in enumerate(labels) if i == 0 or labels[i - 1] != label]
        assert distinct == [*spec.subtasks, "done"]
        assert all(b >= a for a, b in itertools.pairwise(progress))  # progress never goes back
        assert len(labels) < 700
        # every "go to the X" tick asks for X's stand-off heading: a lookup from the text, whatever the robot faces
        for label, action in zip(labels, expert.recorded, strict=True):
            if label.startswith("go to the "):
                goal = FACING[label.removeprefix("go to the ")]
                assert abs(wrap_angle(float(action[11]) - goal)) < 1e-6, (label, action[11])


def test_expert_recovers_from_noise(blind: SimKitchen) -> None:
    blind.set_task("put the fruit in the bowl")
    _expert, labels, _, perturbed = run_expert(blind, seed=3, noise=1.0)
    assert perturbed > 0
    assert blind.task_success() is True and labels[-1] == "done"


def test_grasp_assist_holds_with_hysteresis(blind: SimKitchen) -> None:
    blind.set_task("put the can in the sink")
    blind.reset(0)
    expert = ScriptedExpert(blind, seed=0)
    for _ in range(400):
        action, _ = expert.act()
        blind.act(action)
        if blind.held_object == "can":
            break
    assert blind.held_object == "can"
    hover = blind.hold_action()
    hover[7] = 0.45  # between release (0.35) and close (0.5): keeps holding
    for _ in range(3):
        blind.act(hover)
    assert blind.held_object == "can"
    hover[7] = 0.2
    blind.act(hover)
    assert blind.held_object is None
