"""EpisodeRecorder: frames recorded off-thread reach the dataset intact, in order, with subtasks and events."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from agent.recorder import EpisodeRecorder, RecorderError
from policy.data.reader import LeRobotDatasetReader
from robots.types import CameraSpec, JointSpec, Observation, RobotDescription

DESCRIPTION = RobotDescription(
    name="test",
    robot_type="synthetic",
    cameras=[CameraSpec(name="head", height=32, width=48), CameraSpec(name="wrist", height=16, width=16, wrist=True)],
    state=[JointSpec(name="q1"), JointSpec(name="q2")],
    actions=[JointSpec(name="q1"), JointSpec(name="q2"), JointSpec(name="grip")],
    control_hz=20.0,
)


def observation(i: int, buffer: dict[str, np.ndarray] | None = None) -> Observation:
    images = (
        buffer
        if buffer is not None
        else {"head": np.zeros((32, 48, 3), np.uint8), "wrist": np.zeros((16, 16, 3), np.uint8)}
    )
    for image in images.values():
        image[...] = (i * 9) % 256  # a robot that reuses its image buffers tick after tick
    return Observation(images=images, state=np.array([i, -i], np.float32), state_names=["q1", "q2"])


def test_recorded_ticks_are_all_on_disk_after_finish(tmp_path) -> None:
    recorder = EpisodeRecorder(tmp_path / "episodes", DESCRIPTION)
    try:
        assert recorder.start("put the cup in the sink") == 0
        recorder.subtask("go to the table", "policy")
        buffer = {"head": np.zeros((32, 48, 3), np.uint8), "wrist": np.zeros((16, 16, 3), np.uint8)}
        for i in range(25):
            if i == 10:
                recorder.event("interjection", "Policy: go to the table → Relabeled: pick up the cup")
                recorder.subtask("pick up the cup", "coach")
            recorder.record(observation(i, buffer), np.array([i, 2 * i, 0.5], np.float32), i // 5, i % 5)
        root = recorder.finish("succeeded", True)
        assert recorder.start("wipe the table") == 1
        recorder.record(observation(0), np.zeros(3, np.float32), 0, 0)
        recorder.event("estop", "operator")
        recorder.finish("stopped-by-e-stop", None)
    finally:
        recorder.close()
    reader = LeRobotDatasetReader(root)
    first, second = reader.episodes
    assert first.length == 25 and first.outcome == "succeeded" and first.success is True
    arrays = reader.episode_arrays(0)
    np.testing.assert_array_equal(arrays["state"][:, 0], np.arange(25))
    np.testing.assert_array_equal(arrays["action"][:, 1], 2 * np.arange(25))
    np.testing.assert_array_equal(arrays["chunk_id"], np.arange(25) // 5)
    means = [frame.images["head"].mean() for frame in reader.episode_frames(0)]
    np.testing.assert_allclose(means, [(i * 9) % 256 for i in range(25)], atol=3)  # each tick's own image
    assert [(s["text"], s["source"], s["frame_index"]) for s in first.subtasks] == [
        ("go to the table", "policy", 0),
        ("pick up the cup", "coach", 10),
    ]
    assert [e["kind"] for e in first.events] == ["interjection"] and first.events[0]["frame_index"] == 10
    assert second.length == 1 and [e["kind"] for e in second.events] == ["estop"]


def test_record_returns_without_waiting_for_the_writer(tmp_path) -> None:
    recorder = EpisodeRecorder(tmp_path / "episodes", DESCRIPTION)
    try:
        recorder.start("t")
        gate = threading.Event()
        recorder._queue.put((gate.wait, (30,), None))  # the writer thread is now busy until the gate opens
        for i in range(40):
            recorder.record(observation(i), np.zeros(3, np.float32), 0, i)
        assert recorder.backlog >= 40  # all queued, none written, and record() never blocked
        gate.set()
        recorder.finish("succeeded")
    finally:
        recorder.close()
    assert LeRobotDatasetReader(tmp_path / "episodes").episode(0).length == 40


def test_bad_input_fails_on_the_callers_thread(tmp_path) -> None:
    recorder = EpisodeRecorder(tmp_path / "episodes", DESCRIPTION)
    try:
        with pytest.raises(RecorderError, match="no episode started"):
            recorder.record(observation(0), np.zeros(3), 0, 0)
        recorder.start("t")
        with pytest.raises(ValueError, match="action must have shape"):
            recorder.record(observation(0), np.zeros(7), 0, 0)
        bad = Observation(images={"head": np.zeros((32, 48, 3), np.uint8)}, state=np.zeros(2))
        with pytest.raises(ValueError, match="lacks camera 'wrist'"):
            recorder.record(bad, np.zeros(3), 0, 0)
        recorder.record(observation(1), np.zeros(3), 0, 0)
        recorder.finish("failed", False)
    finally:
        recorder.close()
    assert LeRobotDatasetReader(tmp_path / "episodes").episode(0).length == 1


def test_close_discards_an_unfinished_episode_and_reopening_keeps_finished_ones(tmp_path) -> None:
    recorder = EpisodeRecorder(tmp_path / "episodes", DESCRIPTION)
    recorder.start("t")
    recorder.record(observation(0), np.zeros(3), 0, 0)
    recorder.finish("succeeded")
    recorder.start("t")
    recorder.record(observation(1), np.zeros(3), 0, 0)
    recorder.close()
    recorder = EpisodeRecorder(tmp_path / "episodes", DESCRIPTION)
    try:
        assert recorder.start("t") == 1
    finally:
        recorder.close()
    assert [e.length for e in LeRobotDatasetReader(tmp_path / "episodes").episodes] == [1]
