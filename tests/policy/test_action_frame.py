"""Relative action frames: exact round trips, the base offset in the robot's own frame, and the policy applying it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policy.action_frame import ActionFrame
from policy.inference import Pi05Policy

NAMES = ["arm", "gripper", "base_x", "base_y", "base_yaw"]


def frame() -> ActionFrame:
    return ActionFrame.from_names(["arm"], ["base_x", "base_y", "base_yaw"], NAMES, NAMES)


def test_base_offset_is_expressed_in_the_robots_frame():
    state = np.array([0.3, 0.5, 1.0, 2.0, math.pi / 2])  # facing +y
    target = np.array([[0.5, 0.9, 1.0, 2.4, math.pi / 2 + 0.3]])  # 0.4 m further along +y, i.e. straight ahead
    rel = frame().to_model(target, state)
    np.testing.assert_allclose(rel[0], [0.2, 0.9, 0.4, 0.0, 0.3], atol=1e-6)


def test_world_frame_offset_keeps_the_worlds_axes_whatever_the_heading():
    """The same world displacement gives the same model target at any heading; only the yaw offset is wrapped."""
    world = ActionFrame.from_spec({"base_pose": ["base_x", "base_y", "base_yaw"], "base_frame": "world"}, NAMES, NAMES)
    for heading in (0.0, math.pi / 2, 2.5):
        state = np.array([0.3, 0.5, 1.0, 2.0, heading])
        target = np.array([[0.3, 0.5, 1.4, 1.7, heading + 0.2]])
        np.testing.assert_allclose(world.to_model(target, state)[0], [0.3, 0.5, 0.4, -0.3, 0.2], atol=1e-6)
    with pytest.raises(ValueError, match="base_frame"):
        ActionFrame.from_spec({"base_pose": ["base_x", "base_y", "base_yaw"], "base_frame": "map"}, NAMES, NAMES)


def test_specs_without_base_frame_mean_the_robots_frame():
    spec = {"relative": ["arm"], "base_pose": ["base_x", "base_y", "base_yaw"]}
    assert ActionFrame.from_spec(spec, NAMES, NAMES) == frame()


@pytest.mark.parametrize("base_frame", ["robot", "world"])
def test_round_trip_is_exact_for_batches_and_wraps_yaw(base_frame):
    rng = np.random.default_rng(0)
    states = rng.uniform(-3, 3, size=(7, 5))
    chunks = rng.uniform(-3, 3, size=(7, 10, 5))
    f = ActionFrame.from_names(["arm"], ["base_x", "base_y", "base_yaw"], NAMES, NAMES, base_frame)
    rel = f.to_model(chunks, states)
    assert np.all(np.abs(rel[..., 4]) <= math.pi)
    back = f.to_robot(rel, states)
    np.testing.assert_allclose(back[..., :4], chunks[..., :4], atol=1e-5)
    np.testing.assert_allclose(np.cos(back[..., 4] - chunks[..., 4]), 1.0, atol=1e-6)  # same heading


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="not an action"):
        ActionFrame.from_names(["elbow"], None, NAMES, NAMES)
    with pytest.raises(ValueError, match="needs a state named"):
        ActionFrame.from_names(["arm"], None, NAMES, NAMES[1:])
    with pytest.raises(ValueError, match="x, y, yaw"):
        ActionFrame.from_names([], ["base_x", "base_y"], NAMES, NAMES)


class Frame:
    """An observation as the policy reads it (images and state)."""

    def __init__(self, images: dict[str, np.ndarray], state: np.ndarray) -> None:
        self.images, self.state = images, state


def test_policy_returns_robot_units_and_round_trips_through_save(tmp_path):
    """The same weights and noise, with and without the frame: the chunks differ exactly by the frame's map."""
    kwargs = dict(preset="tiny", camera_names=("head",), state_names=NAMES, action_names=NAMES, seed=3)
    absolute = Pi05Policy.build_random(**kwargs)
    relative = Pi05Policy.build_random(**kwargs)
    relative.metadata["action_frame"] = {"relative": ["arm"], "base_pose": ["base_x", "base_y", "base_yaw"]}
    relative.action_frame = ActionFrame.from_metadata(relative.metadata)
    state = np.array([0.1, 0.5, 1.5, -0.7, 2.0], np.float32)
    obs = Frame(images={"head": np.zeros((32, 32, 3), np.uint8)}, state=state)
    noise = np.random.default_rng(1).normal(size=(absolute.config.action_horizon, absolute.config.max_action_dim))
    raw = absolute.act(obs, "go to the table", noise=noise).actions
    mapped = relative.act(obs, "go to the table", noise=noise).actions
    np.testing.assert_allclose(mapped, frame().to_robot(raw, state), atol=1e-5)

    relative.save(tmp_path / "ckpt")
    loaded = Pi05Policy.from_checkpoint(tmp_path / "ckpt", device="cpu")
    assert loaded.action_frame == relative.action_frame
    np.testing.assert_allclose(loaded.act(obs, "go to the table", noise=noise).actions, mapped, atol=1e-5)


def prepared_set(seed: int, n: int = 40, horizon: int = 6, state_stats=None, offset: float = 0.0):
    """A small PreparedData of absolute chunks near their states (normalized with its own action stats)."""
    from policy.normalize import NormStats
    from policy.tokenizers.text import household_tokenizer
    from policy.train import PreparedData
    from policy.training.data import TrainingArrays

    rng = np.random.default_rng(seed)
    states = rng.uniform(-2, 2, size=(n, 5)).astype(np.float32)
    chunks = (states[:, None, :] + offset + rng.normal(0, 0.2, size=(n, horizon, 5))).astype(np.float32)
    stats = NormStats.from_arrays({"state": states, "actions": chunks.reshape(-1, 5)})
    if state_stats is not None:
        stats = NormStats({"state": state_stats, "actions": stats["actions"]})
    padded = np.zeros((n, horizon, 8), np.float32)
    padded[..., :5] = stats.normalize("actions", chunks)
    empty = np.zeros((n, 4), np.int64)
    arrays = TrainingArrays(
        camera_names=["head"],
        images=np.zeros((n, 1, 4, 4, 3), np.uint8),
        actions=padded,
        action_dim=5,
        action_is_pad=np.zeros((n, horizon), bool),
        s1_tokens=empty,
        s1_mask=empty.astype(bool),
        s1_loss=empty.astype(bool),
        s2_tokens=empty,
        s2_mask=empty.astype(bool),
        s2_loss=empty.astype(bool),
        has_subtask=np.zeros(n, bool),
        episode_index=np.zeros(n, np.int64),
        states=np.pad(stats.normalize("state", states), ((0, 0), (0, 3))),
    )
    meta = {"action_names": NAMES, "state_names": NAMES, "camera_names": ["head"]}
    return PreparedData(arrays, stats, household_tokenizer(), None, meta), states, chunks


def test_prepared_data_is_reframed_exactly_and_gets_stats_of_the_relative_targets():
    """Absolute chunks stored normalized -> relative chunks whose unnormalized values equal frame.to_model."""
    from policy.train import reframe_prepared

    prepared, states, chunks = prepared_set(0)
    stats = prepared.norm_stats
    spec = {"relative": ["arm"], "base_pose": ["base_x", "base_y", "base_yaw"]}
    reframed = reframe_prepared(prepared, spec)

    assert reframed.meta["action_frame"] == spec
    assert reframed.norm_stats["state"].q01.tolist() == stats["state"].q01.tolist()  # prompts/state token unchanged
    relative = reframed.norm_stats.unnormalize("actions", reframed.arrays.actions[..., :5])
    np.testing.assert_allclose(relative, frame().to_model(chunks, states), atol=1e-4)
    assert np.all(reframed.arrays.actions[..., 5:] == 0)  # padding dims untouched
    back = reframe_prepared(reframed, None)  # and back to absolute
    np.testing.assert_allclose(
        back.norm_stats.unnormalize("actions", back.arrays.actions[..., :5])[..., :4], chunks[..., :4], atol=1e-4
    )


def test_extra_prepared_data_is_appended_in_the_main_sets_action_normalization():
    """Recovery demonstrations prepared separately join the main data: same robot units after the merge."""
    from policy.train import TrainingError, append_prepared

    main, _, main_chunks = prepared_set(0)
    extra, _, extra_chunks = prepared_set(1, n=10, state_stats=main.norm_stats["state"], offset=1.5)
    merged = append_prepared(main, extra)
    assert len(merged.arrays) == 50 and merged.norm_stats is main.norm_stats
    units = merged.norm_stats.unnormalize("actions", merged.arrays.actions[..., :5])
    np.testing.assert_allclose(units, np.concatenate([main_chunks, extra_chunks]), atol=1e-4)
    assert merged.arrays.episode_index[40:].min() == 1  # the extra episodes keep their own indices
    other_states, _, _ = prepared_set(2, n=10)
    with pytest.raises(TrainingError, match="state stats"):
        append_prepared(main, other_states)


def test_absolute_heading_is_the_target_itself_in_the_states_range():
    """x, y stay world offsets; the heading target is predicted as is, so one goal heading is one model value
    whatever the robot faces, and a heading a whole turn away maps to the same value."""
    spec = {
        "base_pose": ["base_x", "base_y", "base_yaw"],
        "base_frame": "world",
        "base_yaw": "absolute",
        "yaw_low": -math.pi / 2,
    }
    f = ActionFrame.from_spec(spec, NAMES, NAMES)
    for heading in (-1.0, 0.5, 3.0, 4.5):
        state = np.array([0.3, 0.5, 1.0, 2.0, heading])
        for target_yaw in (math.pi, -math.pi, 3 * math.pi):
            target = np.array([[0.3, 0.5, 1.4, 1.7, target_yaw]])
            model = f.to_model(target, state)[0]
            np.testing.assert_allclose(model, [0.3, 0.5, 0.4, -0.3, math.pi], atol=1e-6)
            np.testing.assert_allclose(f.to_robot(model[None], state)[0], [0.3, 0.5, 1.4, 1.7, math.pi], atol=1e-6)
    assert f.to_model(np.array([[0, 0, 0, 0, -math.pi / 2 - 0.1]]), np.zeros(5))[0, 4] == pytest.approx(
        3 * math.pi / 2 - 0.1
    )
    with pytest.raises(ValueError, match="yaw_low"):
        ActionFrame.from_spec({**spec, "yaw_low": None}, NAMES, NAMES)
    with pytest.raises(ValueError, match="base_yaw"):
        ActionFrame.from_spec({**spec, "base_yaw": "relative"}, NAMES, NAMES)


def test_training_config_writes_the_absolute_heading_into_the_checkpoint_spec():
    from pydantic import ValidationError

    from policy.training.config import ActionFrameSettings

    settings = ActionFrameSettings(
        base_pose=["base_x", "base_y", "base_yaw"], base_frame="world", base_yaw="absolute", yaw_low=-1.5
    )
    spec = settings.as_metadata()
    assert spec["base_yaw"] == "absolute" and spec["yaw_low"] == -1.5
    assert ActionFrame.from_spec(spec, NAMES, NAMES).base_yaw == "absolute"
    assert "base_yaw" not in ActionFrameSettings(base_pose=["base_x", "base_y", "base_yaw"]).as_metadata()
    with pytest.raises(ValidationError, match="yaw_low"):
        ActionFrameSettings(base_pose=["base_x", "base_y", "base_yaw"], base_yaw="absolute")
