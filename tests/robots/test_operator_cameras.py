"""Operator cameras: people see (live) and review (recordings) sharp frames while the policy keeps its input size.

The sim renders each camera twice at the same instant: `camera_size` for the policy (what checkpoints are trained
on) and `operator_camera_size` for people. Issue 17: the console showed 96 px renders blown up to 256 px and the
recorded review videos were 96 px.
"""

from __future__ import annotations

import numpy as np
import pytest

from agent.recorder import EpisodeRecorder
from policy.client import PolicyClient
from policy.data.reader import LeRobotDatasetReader
from robots.registry import make_robot
from robots.sim.kitchen import SimKitchen
from robots.sim.tasks import TASKS
from robots.types import Observation

POLICY_SIZE, OPERATOR_SIZE = 32, 80


@pytest.fixture(scope="module")
def robot() -> SimKitchen:
    robot = make_robot(
        "sim-kitchen", task=TASKS[0], camera_size=POLICY_SIZE, operator_camera_size=OPERATOR_SIZE, seed=0
    )
    yield robot
    robot.close()


def test_the_sim_renders_both_sizes_of_the_same_view(robot: SimKitchen) -> None:
    obs = robot.observe()
    for camera in ("head", "wrist"):
        assert obs.images[camera].shape == (POLICY_SIZE, POLICY_SIZE, 3)
        assert obs.operator_image(camera).shape == (OPERATOR_SIZE, OPERATOR_SIZE, 3)
        # the same picture, only sharper: shrunk to the policy's size it matches the policy frame closely
        import cv2

        shrunk = cv2.resize(obs.operator_image(camera), (POLICY_SIZE, POLICY_SIZE), interpolation=cv2.INTER_AREA)
        assert np.abs(shrunk.astype(int) - obs.images[camera].astype(int)).mean() < 25
    spec = robot.describe().cameras[0]
    assert (spec.height, spec.width) == (POLICY_SIZE, POLICY_SIZE)
    assert spec.operator_shape == (OPERATOR_SIZE, OPERATOR_SIZE)


def test_without_an_operator_size_people_see_the_policy_frames() -> None:
    obs = Observation(images={"head": np.zeros((8, 8, 3), np.uint8)}, state=np.zeros(1))
    assert obs.operator_image("head") is obs.images["head"]
    with pytest.raises(ValueError, match=r"operator_images\['head'\] must have shape"):
        Observation(images={}, operator_images={"head": np.zeros((8, 8), np.uint8)}, state=np.zeros(1))
    with pytest.raises(ValueError, match="operator_camera_size must be 16"):
        SimKitchen(operator_camera_size=4096, render=False)


def test_the_policy_is_sent_its_configured_size(robot: SimKitchen, monkeypatch: pytest.MonkeyPatch) -> None:
    # the worker's metadata frame, without a worker: the payload is what would go on the wire
    monkeypatch.setattr(PolicyClient, "metadata", property(lambda self: {"camera_names": ["head", "wrist"]}))
    client = PolicyClient("ws://127.0.0.1:1")
    payload = client._observation_payload(robot.observe(), "pick up the can")
    assert {name: image.shape for name, image in payload["images"].items()} == {
        "head": (POLICY_SIZE, POLICY_SIZE, 3),
        "wrist": (POLICY_SIZE, POLICY_SIZE, 3),
    }


def test_episodes_are_recorded_at_the_operator_size(robot: SimKitchen, tmp_path) -> None:
    recorder = EpisodeRecorder(tmp_path / "episodes", robot.describe(), live_video=False)
    try:
        recorder.start(TASKS[0])
        hold = robot.hold_action()
        for _ in range(4):
            recorder.record(robot.observe(), hold)
        root = recorder.finish("aborted", None)
    finally:
        recorder.close()
    reader = LeRobotDatasetReader(root)
    frame = next(iter(reader.episode_frames(0)))
    assert {name: image.shape for name, image in frame.images.items()} == {
        "head": (OPERATOR_SIZE, OPERATOR_SIZE, 3),
        "wrist": (OPERATOR_SIZE, OPERATOR_SIZE, 3),
    }


def test_the_live_stream_sends_the_operator_size(robot: SimKitchen) -> None:
    import base64
    import json

    import cv2

    from agent.api.live import LiveHub

    hub = LiveHub(bus=None)
    try:
        message = json.loads(hub._frame_message("kitchen", robot.observe(), "head", None, 80))
    finally:
        hub.stop()
    jpeg = np.frombuffer(base64.b64decode(message["data"]), np.uint8)
    assert cv2.imdecode(jpeg, cv2.IMREAD_COLOR).shape[:2] == (OPERATOR_SIZE, OPERATOR_SIZE)
