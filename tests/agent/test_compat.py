"""A checkpoint trained on one robot interface never drives a robot that speaks another.

sim-kitchen v1 commanded the base with velocities (base_vx, base_vy, base_wz), v2 with pose targets (base_x,
base_y, base_yaw): the same 12 dimensions in other units. The check itself, then every place that must use it:
`hearth eval`, `hearth serve-policy --robot`, and the orchestrator facing a worker.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from agent.compat import PolicyMismatchError, check_policy_fits_robot
from robots.types import CameraSpec, JointSpec, RobotDescription
from tests.support import wait_until

ARM = [f"arm_joint{i}" for i in range(1, 8)]
STATE = [*ARM, "gripper", "torso", "base_x", "base_y", "base_yaw"]
V1_ACTIONS = [*ARM, "gripper", "torso", "base_vx", "base_vy", "base_wz"]
V2_ACTIONS = list(STATE)
TASK = "put the can in the sink"


def kitchen(interface_version: int = 2, cameras: tuple[str, ...] = ("head", "wrist")) -> RobotDescription:
    """sim-kitchen's description without building MuJoCo (the real one is used by the command tests below)."""
    return RobotDescription(
        name="sim-kitchen",
        robot_type="panda_omron",
        control_hz=20.0,
        interface_version=interface_version,
        cameras=[CameraSpec(name=c, height=16, width=16) for c in cameras],
        state=[JointSpec(name=n) for n in STATE],
        actions=[JointSpec(name=n) for n in V2_ACTIONS],
    )


def metadata(actions=V1_ACTIONS, states=STATE, cameras=("head", "wrist"), **extra) -> dict:
    return {"camera_names": list(cameras), "state_names": list(states), "action_names": list(actions), **extra}


def refusal(policy_metadata: dict, description: RobotDescription | None = None) -> str:
    with pytest.raises(PolicyMismatchError) as caught:
        check_policy_fits_robot(policy_metadata, description or kitchen(), "checkpoint ck")
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


# ---- the check ----------------------------------------------------------------------------------------


def test_an_old_velocity_checkpoint_is_refused_on_the_pose_target_kitchen_with_what_differs() -> None:
    message = refusal(metadata())  # the bundled sim-small before retraining: v1 names, no version recorded
    assert message == (
        "checkpoint ck was trained on interface v1, but robot sim-kitchen speaks panda_omron interface v2: "
        "action names differ: base_vx (robot: base_x), base_vy (robot: base_y), base_wz (robot: base_yaw); "
        "retrain on data recorded from this robot or use a checkpoint that matches it"
    )


def test_same_names_in_other_units_are_refused_by_the_recorded_version() -> None:
    message = refusal(metadata(V2_ACTIONS, robot_type="panda_omron", robot_interface_version=1))
    assert message.startswith("checkpoint ck was trained on panda_omron interface v1, but robot sim-kitchen speaks")
    assert "v2; retrain" in message


def test_matching_metadata_passes_and_a_robot_may_have_more_cameras() -> None:
    fitting = metadata(V2_ACTIONS, robot_type="panda_omron", robot_interface_version=2)
    check_policy_fits_robot(fitting, kitchen(cameras=("head", "wrist", "third")))
    check_policy_fits_robot(metadata(V2_ACTIONS, robot_interface_version=3), kitchen(interface_version=3))
    check_policy_fits_robot(
        metadata(V1_ACTIONS),
        kitchen(interface_version=1).model_copy(update={"actions": [JointSpec(name=n) for n in V1_ACTIONS]}),
    )  # an old checkpoint on an old robot


def test_order_state_names_cameras_and_robot_type_are_each_named() -> None:
    swapped = [*ARM, "gripper", "torso", "base_y", "base_x", "base_yaw"]
    message = refusal(metadata(swapped, robot_interface_version=2))
    assert "does not fit robot sim-kitchen (panda_omron interface v2): action names in another order" in message
    message = refusal(metadata(V2_ACTIONS, [*STATE[:-1], "heading"], robot_interface_version=2))
    assert "state names differ: heading (robot: base_yaw)" in message
    message = refusal(metadata(V2_ACTIONS, cameras=("head", "third"), robot_interface_version=2))
    assert "cameras third missing on the robot (it has head, wrist)" in message
    message = refusal(metadata(V2_ACTIONS, robot_type="tiago", robot_interface_version=2))
    assert message.startswith("checkpoint ck was trained on tiago interface v2, but robot sim-kitchen speaks")
    message = refusal(metadata([*V2_ACTIONS, "head_pan"], robot_interface_version=2))
    assert "action names: the checkpoint has 13 (" in message and "the robot 12 (" in message


def test_generic_converted_names_are_checked_on_dims_only() -> None:
    generic = metadata([f"action_{i}" for i in range(12)], [f"state_{i}" for i in range(12)], ("base_0_rgb",))
    check_policy_fits_robot(generic, kitchen())  # no version, slot-named cameras: counts are all we can check
    short = metadata([f"action_{i}" for i in range(8)], [f"state_{i}" for i in range(8)])
    message = refusal(short)
    assert "action dims: the checkpoint has 8, the robot 12; state dims: the checkpoint has 8, the robot 12" in message
    assert "interface v" in message and "was trained on" not in message  # unknown interface, not "v1"
    check_policy_fits_robot({"action_dim": 12}, kitchen())  # a foreign worker's frame with counts only


# ---- the places that must use it ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One tiny random checkpoint saved three times with different metadata (only config.json differs)."""
    from policy.inference import Pi05Policy

    root = tmp_path_factory.mktemp("checkpoints")
    policy = Pi05Policy.build_random(
        "tiny",
        camera_names=("head", "wrist"),
        state_names=STATE,
        action_names=V2_ACTIONS,
        seed=0,
        robot_type="panda_omron",
        robot_interface_version=2,
        action_horizon=10,
        max_token_len=64,
    )
    policy.save(root / "v2")
    variants = {
        "v1": {"action_names": V1_ACTIONS, "robot_type": None, "robot_interface_version": None},
        "generic": {
            "action_names": [f"action_{i}" for i in range(12)],
            "state_names": [f"state_{i}" for i in range(12)],
            "robot_type": None,
            "robot_interface_version": None,
        },
    }
    for name, changes in variants.items():
        shutil.copytree(root / "v2", root / name)
        config = json.loads((root / name / "config.json").read_text())
        config.update(changes)
        (root / name / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return {name: root / name for name in ("v1", "v2", "generic")}


def _invoke(*args: str):
    from typer.testing import CliRunner

    from agent.cli import app

    result = CliRunner().invoke(app, list(args))
    return result, " ".join(result.output.split())


def test_hearth_eval_refuses_a_v1_checkpoint_on_the_v2_kitchen_in_one_line(checkpoints, tmp_path) -> None:
    result, output = _invoke(
        "eval",
        "--checkpoint",
        str(checkpoints["v1"]),
        "--task",
        TASK,
        "--episodes",
        "1",
        "--camera-size",
        "16",
        "--out",
        str(tmp_path / "eval"),
    )
    assert result.exit_code == 2
    assert (
        f"error: checkpoint {checkpoints['v1']} was trained on interface v1, but robot sim-kitchen speaks "
        "panda_omron interface v2: action names differ: base_vx (robot: base_x)" in output
    )
    assert "Traceback" not in result.output
    assert not (tmp_path / "eval").exists()  # nothing ran, nothing was recorded


def test_hearth_serve_policy_with_robot_refuses_a_mismatch_and_serves_a_fit(checkpoints, monkeypatch) -> None:
    served = []

    class NoNetworkServer:  # everything up to binding the port is real
        def __init__(self, policy, **options) -> None:
            served.append(policy)
            self.api_keys = options.get("api_keys") or []

        async def serve(self, on_ready=None) -> None:
            return None

        def stop(self) -> None:
            return None

    monkeypatch.setattr("policy.server.PolicyServer", NoNetworkServer)
    result, output = _invoke("serve-policy", "--checkpoint", str(checkpoints["v1"]), "--robot", "sim-kitchen")
    assert result.exit_code == 2 and not served
    assert f"error: checkpoint {checkpoints['v1']} was trained on interface v1, but robot sim-kitchen speaks" in output
    for name in ("v2", "generic"):
        result, output = _invoke("serve-policy", "--checkpoint", str(checkpoints[name]), "--robot", "sim-kitchen")
        assert result.exit_code == 0, output
    assert [p.metadata["robot_interface_version"] for p in served] == [2, None]
    result, output = _invoke("serve-policy", "--checkpoint", str(checkpoints["v2"]), "--robot", "no-such-robot")
    assert result.exit_code == 2 and "unknown robot 'no-such-robot'" in output


class FixedSystem2:
    autonomous = True
    name = "fixed"

    def predict(self, obs, task: str) -> str:
        return "go to the table"


class InProcessPolicy:
    """A policy with metadata whose chunks say "stay where you are" (each action is the current state)."""

    def __init__(self, metadata: dict) -> None:
        self._metadata = metadata
        self.calls = 0

    @property
    def metadata(self) -> dict:
        return self._metadata

    def act(self, obs, prompt: str, prev_chunk=None, delay: int = 0):
        from policy.types import ActionChunk

        self.calls += 1
        return ActionChunk(actions=np.tile(np.asarray(obs.state, np.float32), (10, 1)), subtask=prompt)


def test_the_orchestrator_refuses_a_mismatched_worker_before_the_robot_moves() -> None:
    from agent.events import EventBus
    from agent.orchestrator import OrchestratorConfig, RobotRuntime
    from agent.types import TaskState
    from robots.registry import make_robot
    from robots.safety import SafeRobot

    outcomes = {}
    for name in ("v1", "v2"):
        robot = SafeRobot(make_robot("sim-kitchen", camera_size=16, seed=0, render=False))  # closed with its watchdog
        description = robot.describe()
        fitting = metadata(
            V2_ACTIONS, robot_type=description.robot_type, robot_interface_version=description.interface_version
        )
        bus = EventBus()
        events = bus.subscribe(maxsize=10_000, kinds={"error"})
        policy = InProcessPolicy(metadata() if name == "v1" else fitting)
        config = OrchestratorConfig(max_task_s=None, idle_observe_hz=0, worker_late_s=60.0)
        runtime = RobotRuntime("kitchen", robot, policy, FixedSystem2(), None, bus, config)
        runtime.start()
        try:
            if name == "v1":  # reported from the worker's metadata at start-up, before any task
                wait_until(lambda r=runtime: r.status()["last_error"], timeout=30, what="the start-up check")
            record = runtime.submit(TASK)
            if name == "v2":
                runtime.wait(record.id, 60, states={TaskState.RUNNING})
                deadline = time.monotonic() + 60
                while runtime.status()["executed_actions"] < 3 and time.monotonic() < deadline:
                    time.sleep(0.05)
                runtime.abort(record.id)
            outcomes[name] = (runtime.wait(record.id, 60), runtime.status(), events.drain(), policy.calls)
        finally:
            runtime.stop()
            robot.close()
    final, status, errors, calls = outcomes["v1"]
    assert final.state is TaskState.FAILED and calls >= 1
    mismatch = final.reason.removeprefix("policy worker refused the task: ")  # a permanent failure (issue 16)
    assert mismatch.startswith("the policy was trained on interface v1, but robot sim-kitchen speaks panda_omron")
    assert status["executed_actions"] == 0 and status["chunks"] == 0  # the chunk was never used
    assert {e.data["message"] for e in errors} == {mismatch}  # at start-up and for the chunk: one message
    final, status, errors, _ = outcomes["v2"]
    assert final.state is TaskState.ABORTED and status["executed_actions"] >= 3 and not errors
