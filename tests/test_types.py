"""The shared data model rejects bad input with messages that name the field and expected shape."""

import numpy as np
import pytest
from pydantic import ValidationError

from agent.types import InvalidTransition, Subtask, SubtaskSource, TaskState, check_transition
from policy.types import ActionChunk, ObservationLike
from robots.types import CameraSpec, JointSpec, Observation, RobotDescription


def image(h: int = 8, w: int = 6) -> np.ndarray:
    return np.zeros((h, w, 3), dtype=np.uint8)


def test_observation_accepts_valid_images_and_casts_state() -> None:
    obs = Observation(images={"head": image(), "wrist": image(4, 4)}, state=[1, 2, 3], state_names=["a", "b", "c"])
    assert obs.state.dtype == np.float32
    assert obs.state.tolist() == [1.0, 2.0, 3.0]
    assert isinstance(obs, ObservationLike)


@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        ({"head": np.zeros((8, 6), np.uint8)}, "images['head'] must have shape (H, W, 3), got (8, 6)"),
        ({"head": np.zeros((8, 6, 4), np.uint8)}, "got (8, 6, 4)"),
        ({"head": np.zeros((8, 6, 3), np.float32)}, "must be uint8 (H, W, 3), got dtype float32"),
        ({"head": [[1, 2, 3]]}, "must be a numpy array"),
    ],
)
def test_observation_rejects_bad_images(images: dict, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        Observation(images=images, state=[0.0])
    assert fragment in str(info.value)
    assert "images" in str(info.value)


def test_observation_rejects_bad_state() -> None:
    with pytest.raises(ValidationError, match=r"state must be a 1-D vector of shape \(n,\), got shape \(2, 2\)"):
        Observation(images={}, state=np.zeros((2, 2)))
    with pytest.raises(ValidationError, match="state_names has 2 names but state has shape"):
        Observation(images={}, state=[1.0, 2.0, 3.0], state_names=["a", "b"])


def test_action_chunk_validates_shape_names_and_finiteness() -> None:
    chunk = ActionChunk(actions=np.ones((50, 7)), action_names=[f"j{i}" for i in range(7)], subtask="pick up the cup")
    assert (chunk.horizon, chunk.action_dim) == (50, 7)
    assert chunk.actions.dtype == np.float32
    with pytest.raises(ValidationError, match=r"actions must have shape \(H, D\), got shape \(50,\)"):
        ActionChunk(actions=np.ones(50))
    with pytest.raises(ValidationError, match="NaN or inf"):
        ActionChunk(actions=np.array([[0.0, np.nan]]))
    with pytest.raises(ValidationError, match="action_names has 1 names"):
        ActionChunk(actions=np.ones((2, 2)), action_names=["x"])
    with pytest.raises(ValidationError, match="chunk_id"):
        ActionChunk(actions=np.ones((2, 2)), chunk_id=-1)


def test_robot_description_and_joint_limits() -> None:
    desc = RobotDescription(
        name="r",
        robot_type="sim",
        cameras=[CameraSpec(name="head", height=96, width=96)],
        state=[JointSpec(name="q0", unit="rad", lower=-1, upper=1)],
        actions=[JointSpec(name="dq0")],
        control_hz=20,
    )
    assert desc.camera_names == ["head"] and desc.action_names == ["dq0"]
    with pytest.raises(ValidationError, match=r"lower limit 2\.0 > upper limit 1\.0"):
        JointSpec(name="bad", lower=2, upper=1)
    with pytest.raises(ValidationError, match="control_hz"):
        RobotDescription(name="r", robot_type="sim", cameras=[], state=[], actions=[], control_hz=0)


def test_subtask_normalizes_text_and_rejects_empty() -> None:
    assert Subtask(text="  pick up\nthe cup ", source="coach").text == "pick up the cup"
    assert Subtask(text="x", source="policy").source is SubtaskSource.POLICY
    with pytest.raises(ValidationError, match="non-empty"):
        Subtask(text="   ", source="policy")
    with pytest.raises(ValidationError, match="source"):
        Subtask(text="x", source="robot")


def test_task_lifecycle_transitions() -> None:
    check_transition(TaskState.QUEUED, TaskState.RUNNING)
    check_transition(TaskState.RUNNING, TaskState.PAUSED)
    check_transition(TaskState.PAUSED, TaskState.RUNNING)
    check_transition(TaskState.RUNNING, TaskState.STOPPED_BY_ESTOP)
    assert TaskState.SUCCEEDED.terminal and not TaskState.PAUSED.terminal
    with pytest.raises(InvalidTransition, match="'succeeded' to 'running'"):
        check_transition(TaskState.SUCCEEDED, TaskState.RUNNING)
    with pytest.raises(InvalidTransition):
        check_transition(TaskState.QUEUED, TaskState.SUCCEEDED)
