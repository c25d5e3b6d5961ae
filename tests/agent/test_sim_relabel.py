"""Relabelling prepared sim-kitchen data with the current expert's drive headings (agent/sim_relabel.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.sim_relabel import drive_heading_labels, goal_heading_per_row
from policy.normalize import NormStats
from policy.tokenizers.text import household_tokenizer
from policy.train import PreparedData, reframe_prepared
from policy.training.data import TrainingArrays
from robots.sim.kitchen import ACTION_NAMES, FACING, STATE_NAMES, YAW_STATE_LOW

HORIZON = 3
YAW = ACTION_NAMES.index("base_yaw")
# two episodes: a drive to the table that turns into a pick, then a drive to the counter
EPISODES = [["go to the table"] * 3 + ["pick up the can"] * 3, ["go to the counter"] * 4]


def prepared_episodes(seed: int = 0) -> tuple[PreparedData, np.ndarray]:
    """Absolute chunks built the way training data is (row i's chunk = rows i, i+1, ... of its episode, the last
    action repeated and flagged as padding), with prompts tokenized by the household tokenizer."""
    rng = np.random.default_rng(seed)
    tokenizer = household_tokenizer()
    rows, tokens, episode_of, chunks, pads, states = [], [], [], [], [], []
    for episode, labels in enumerate(EPISODES):
        steps = rng.uniform(-1, 1, size=(len(labels), len(ACTION_NAMES)))
        steps[:, YAW] = rng.uniform(-3.0, 6.0, size=len(labels))  # headings a whole turn outside the range too
        for t, label in enumerate(labels):
            index = np.minimum(np.arange(t, t + HORIZON), len(labels) - 1)
            chunks.append(steps[index])
            pads.append(np.arange(t, t + HORIZON) >= len(labels))
            states.append(steps[t] + rng.normal(0, 0.05, len(STATE_NAMES)))
            ids = tokenizer.encode(f"Task: {label}, State: 1 2 3;\nAction: ")
            tokens.append(np.pad(ids, (0, 32 - len(ids))))
            episode_of.append(episode)
            rows.append(steps[t])
    chunks_a, states_a = np.asarray(chunks, np.float32), np.asarray(states, np.float32)
    states_a[:, YAW] = (states_a[:, YAW] - YAW_STATE_LOW) % (2 * math.pi) + YAW_STATE_LOW
    stats = NormStats.from_arrays({"state": states_a, "actions": chunks_a.reshape(-1, len(ACTION_NAMES))})
    n, dim = len(chunks), len(ACTION_NAMES)
    token_array = np.asarray(tokens, np.int64)
    empty = np.zeros_like(token_array)
    arrays = TrainingArrays(
        camera_names=["head"],
        images=np.zeros((n, 1, 4, 4, 3), np.uint8),
        actions=np.pad(stats.normalize("actions", chunks_a), ((0, 0), (0, 0), (0, 4))),
        action_dim=dim,
        action_is_pad=np.asarray(pads),
        s1_tokens=token_array,
        s1_mask=token_array > 0,
        s1_loss=empty.astype(bool),
        s2_tokens=empty,
        s2_mask=empty.astype(bool),
        s2_loss=empty.astype(bool),
        has_subtask=np.zeros(n, bool),
        episode_index=np.asarray(episode_of, np.int64),
        states=np.pad(stats.normalize("state", states_a), ((0, 0), (0, 4))),
    )
    meta = {"action_names": ACTION_NAMES, "state_names": STATE_NAMES, "camera_names": ["head"], "source": "test"}
    return PreparedData(arrays, stats, tokenizer, None, meta), chunks_a


def headings(prepared: PreparedData) -> np.ndarray:
    dim = prepared.norm_stats.dim("actions")
    return prepared.norm_stats.unnormalize("actions", prepared.arrays.actions[..., :dim])


def test_goal_heading_comes_from_the_go_to_text():
    prepared, _ = prepared_episodes()
    goals = goal_heading_per_row(prepared)
    np.testing.assert_allclose(goals[:3], FACING["table"])
    assert np.isnan(goals[3:6]).all()
    np.testing.assert_allclose(goals[6:], FACING["counter"])


@pytest.mark.parametrize("stored_frame", [None, {"relative": [], "base_pose": ["base_x", "base_y", "base_yaw"]}])
def test_each_chunk_step_gets_the_label_of_its_own_frame(stored_frame):
    """Drive steps ask for the goal heading; the pick's steps (even inside a drive row's chunk) keep their heading,
    moved into the state's range; nothing but the heading changes. Data stored in a relative frame works too."""
    prepared, chunks = prepared_episodes()
    stored = reframe_prepared(prepared, stored_frame)
    before = stored.arrays.actions.copy()
    relabelled = drive_heading_labels(stored)
    out = headings(relabelled)
    assert relabelled.meta.get("action_frame") is None
    assert relabelled.meta["go_to_frames"] == 7  # three ticks of "go to the table", four of "go to the counter"
    np.testing.assert_array_equal(stored.arrays.actions, before)  # the input is left as it was
    np.testing.assert_allclose(np.delete(out, YAW, axis=-1), np.delete(chunks, YAW, axis=-1), atol=1e-4)
    in_range = (chunks[..., YAW] - YAW_STATE_LOW) % (2 * math.pi) + YAW_STATE_LOW
    np.testing.assert_allclose(out[0, :, YAW], FACING["table"], atol=1e-4)
    np.testing.assert_allclose(out[2, 0, YAW], FACING["table"], atol=1e-4)
    np.testing.assert_allclose(out[2, 1:, YAW], in_range[2, 1:], atol=1e-4)  # rows 3, 4: the pick
    np.testing.assert_allclose(out[3:6, :, YAW], in_range[3:6], atol=1e-4)
    np.testing.assert_allclose(out[6:, :, YAW], FACING["counter"], atol=1e-4)


def test_rows_out_of_order_are_refused_rather_than_mislabelled():
    prepared, _ = prepared_episodes()
    order = np.array([1, 0, 2, 3, 4, 5, 6, 7, 8, 9])
    arrays = prepared.arrays
    for name in ("actions", "action_is_pad", "s1_tokens", "s1_mask", "states", "episode_index"):
        setattr(arrays, name, getattr(arrays, name)[order])
    with pytest.raises(ValueError, match="cannot relabel"):
        drive_heading_labels(prepared)
