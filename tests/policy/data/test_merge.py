"""Merging datasets: episodes re-indexed in the chosen order, scalars and video bytes carried over unchanged."""

from __future__ import annotations

import hashlib

import numpy as np

from policy.data.merge import merge_datasets
from policy.data.reader import LeRobotDatasetReader
from tests.policy.data.synthetic import SyntheticEpisode, make_writer, write_episode


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_merge_orders_reindexes_and_skips(tmp_path) -> None:
    a, b, dest = tmp_path / "a", tmp_path / "b", tmp_path / "dest"
    with make_writer(a) as writer:
        write_episode(writer, SyntheticEpisode("task one", 5, 0, subtasks=[(1, "reach", "expert")]))
        write_episode(writer, SyntheticEpisode("task two", 3, 2))
    with make_writer(b) as writer:
        write_episode(writer, SyntheticEpisode("task two", 4, 1, events=[(2, "pause", "x")]))
    # the order key: the synthetic episode number is recoverable from the first state value
    reader_a = LeRobotDatasetReader(a)

    def number(info) -> int:
        root = a if info.length in (5, 3) else b
        return round(float(LeRobotDatasetReader(root).episode_arrays(info.index)["state"][0, 0]))

    assert merge_datasets(dest, [a, b], order=number) == 3
    merged = LeRobotDatasetReader(dest)
    assert [e.length for e in merged.episodes] == [5, 4, 3]
    assert merged.tasks == ["task one", "task two"]
    assert merged.episode_arrays(1)["task_index"].tolist() == [1] * 4
    assert merged.episode_arrays(2)["index"].tolist() == list(range(9, 12))
    np.testing.assert_array_equal(merged.episode_arrays(2)["action"], reader_a.episode_arrays(1)["action"])
    assert [(s["text"], s["source"], s["frame_index"]) for s in merged.episode(0).subtasks] == [("reach", "expert", 1)]
    assert [(e["kind"], e["frame_index"]) for e in merged.episode(1).events] == [("pause", 2)]
    assert sha(merged.video_path(2, "head")) == sha(reader_a.video_path(1, "head"))
    frames = list(merged.episode_frames(1))
    assert len(frames) == 4 and frames[2].events and frames[2].subtask is None

    # a resumed merge skips what is already there
    assert merge_datasets(dest, [b], skip=lambda info: True) == 0
    assert len(LeRobotDatasetReader(dest).episodes) == 3
