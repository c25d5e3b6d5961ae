"""Give prepared sim-kitchen data recorded by an older expert the labels the current expert records.

Why: collecting and preparing the demonstrations costs an hour of CPU, relabelling them seconds. Since
robots/sim/expert.py's drives ask for the goal's heading from the first tick (the pose controller turns at its
own limit) instead of a heading a few degrees ahead of the current one, every "go to the X" tick's heading
target is X's stand-off heading (``FACING``). Data recorded before that change steered the same way (toward the
goal's heading from the start); only the heading label differs, so it can be rewritten from the subtask text
alone. Every other heading target is put into the state's range ``[YAW_STATE_LOW, YAW_STATE_LOW + 2 pi)``, where
the expert's targets already are up to a whole turn.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from policy.action_frame import heading_in_range
from policy.normalize import NormStats
from policy.train import PreparedData, reframe_prepared
from policy.training.data import decoded_prompt_heads
from robots.sim.kitchen import FACING, YAW_STATE_LOW

GO_TO = re.compile(r"^Task: go to the (\w+)")
PROMPT_HEAD_TOKENS = 12  # enough tokens to hold "Task: go to the <furniture>"


def goal_heading_per_row(prepared: PreparedData) -> np.ndarray:
    """Per frame, the stand-off heading of the furniture its "go to the X" subtask names; NaN for other subtasks."""
    texts, inverse = decoded_prompt_heads(prepared.arrays.s1_tokens, prepared.tokenizer.decode, PROMPT_HEAD_TOKENS)
    per_unique = np.full(len(texts), np.nan)
    for i, text in enumerate(texts):
        match = GO_TO.match(text)
        if match:
            if match.group(1) not in FACING:
                raise ValueError(f"a go-to subtask names {match.group(1)!r}, which has no stand-off heading")
            per_unique[i] = FACING[match.group(1)]
    return per_unique[inverse]


def drive_heading_labels(prepared: PreparedData) -> PreparedData:
    """`prepared` with absolute action chunks whose heading targets are what the current expert records.

    The chunk at row i holds the actions of rows i, i + 1, ... of the same episode (its last action repeated past
    its end), so each chunk step takes the label of the frame it belongs to. Returns absolute actions (no action
    frame) with fresh action stats and leaves `prepared` as it was; training re-expresses them in its configured
    frame. ``meta["go_to_frames"]`` counts the frames whose drive heading was rewritten.
    """
    absolute = reframe_prepared(prepared, None)
    arrays, stats = absolute.arrays, absolute.norm_stats
    action_names = list(prepared.meta["action_names"])
    yaw_index = action_names.index("base_yaw")
    dim = stats.dim("actions")
    raw = stats.unnormalize("actions", arrays.actions[..., :dim]).astype(np.float64)
    raw[..., yaw_index] = heading_in_range(raw[..., yaw_index], YAW_STATE_LOW)
    goal = goal_heading_per_row(prepared)
    rows, horizon = raw.shape[0], raw.shape[1]
    episode = arrays.episode_index
    gap = chunk_layout_gap(raw, episode, arrays.action_is_pad)
    if not gap < 1e-3:
        raise ValueError(f"the chunk at row i is not rows i, i + 1, ... of its episode (gap {gap:.3g}); cannot relabel")
    ends = np.flatnonzero(np.r_[episode[1:] != episode[:-1], True])  # each episode's last row (rows are contiguous)
    last_row = ends[np.searchsorted(ends, np.arange(rows))]
    for k in range(horizon):
        source = np.minimum(np.arange(rows) + k, last_row)  # padding repeats the episode's last action
        label = goal[source]
        relabel = ~np.isnan(label)
        raw[relabel, k, yaw_index] = label[relabel]
    valid = ~arrays.action_is_pad
    fresh = NormStats({"state": stats["state"], "actions": NormStats.from_arrays({"actions": raw[valid]})["actions"]})
    actions = arrays.actions.copy()
    actions[..., :dim] = fresh.normalize("actions", raw.astype(np.float32))
    meta = {
        **absolute.meta,
        "source": f"{prepared.meta.get('source', '')}; drive heading targets relabelled to the goal heading",
        "heading_labels": "goal heading while driving (agent/sim_relabel.py)",
        "go_to_frames": int(np.sum(~np.isnan(goal))),
    }
    # a new arrays object: reframe_prepared returns `prepared` itself when it is already absolute
    return PreparedData(replace(arrays, actions=actions), fresh, absolute.tokenizer, absolute.fast, meta)


def chunk_layout_gap(raw: np.ndarray, episode: np.ndarray, is_pad: np.ndarray) -> float:
    """Largest difference between a chunk's second step and the next row's first (same episode, robot units,
    headings already in one range): ~0 when the chunk at row i is built from rows i, i + 1, ..."""
    same = (episode[:-1] == episode[1:]) & ~is_pad[:-1, 1]
    if not same.any():
        return 0.0
    return float(np.max(np.abs(raw[:-1, 1][same] - raw[1:, 0][same])))
