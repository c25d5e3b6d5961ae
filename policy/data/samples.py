"""ChunkSampleDataset: one training sample per recorded frame, with the 50-step action chunk that follows it.

Padding at episode ends follows LeRobot (delta timestamps clamped to the episode): the chunk is filled with the
episode's last action and `action_is_pad` marks those steps, so the loss can ignore them. Videos are decoded one
whole episode at a time and kept in a small cache, because sequential access (the common case) would otherwise
re-decode the same GOPs for every frame.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch.utils.data

from policy.data.reader import LeRobotDatasetReader


class ChunkSampleDataset(torch.utils.data.Dataset):
    """Samples: images {camera: uint8 HxWx3}, state [n], actions [H, d], action_is_pad [H], task, subtask, prompt.

    `prompt` is what System 1 is conditioned on (the subtask in force, else the task); `subtask` is System 2's
    target ("" where the episode has none yet).
    """

    def __init__(
        self,
        root: str | Path,
        action_horizon: int = 50,
        episodes: list[int] | None = None,
        cameras: list[str] | None = None,
        cache_episodes: int = 2,
    ):
        if action_horizon < 1:
            raise ValueError(f"action_horizon must be >= 1, got {action_horizon}")
        self.reader = LeRobotDatasetReader(root)
        self.action_horizon = int(action_horizon)
        self.cameras = list(cameras) if cameras is not None else list(self.reader.camera_names)
        unknown = [c for c in self.cameras if c not in self.reader.camera_names]
        if unknown:
            raise ValueError(f"unknown cameras {unknown}; the dataset has {self.reader.camera_names}")
        chosen = [e.index for e in self.reader.episodes] if episodes is None else [int(e) for e in episodes]
        self.episode_infos = [self.reader.episode(e) for e in chosen]
        self._arrays = {info.index: self.reader.episode_arrays(info.index) for info in self.episode_infos}
        self._offsets = np.cumsum([0] + [info.length for info in self.episode_infos])
        self._cache_size = max(1, int(cache_episodes))
        self._videos: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(episode index, frame index) of sample i."""
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        position = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return self.episode_infos[position].index, int(i - self._offsets[position])

    def _episode_videos(self, episode: int) -> dict[str, np.ndarray]:
        if episode in self._videos:
            self._videos.move_to_end(episode)
            return self._videos[episode]
        videos = {camera: self.reader.decode_video(episode, camera) for camera in self.cameras}
        self._videos[episode] = videos
        while len(self._videos) > self._cache_size:
            self._videos.popitem(last=False)
        return videos

    def __getitem__(self, i: int) -> dict[str, Any]:
        episode, frame = self.locate(int(i))
        info = self.reader.episode(episode)
        arrays = self._arrays[episode]
        steps = frame + np.arange(self.action_horizon)
        is_pad = steps >= info.length
        actions = arrays["action"][np.minimum(steps, info.length - 1)].copy()
        videos = self._episode_videos(episode)
        subtask, source = info.subtask_at(frame)
        return {
            "images": {camera: videos[camera][frame] for camera in self.cameras},
            "state": arrays["state"][frame].copy(),
            "actions": actions,
            "action_is_pad": is_pad,
            "task": info.task,
            "subtask": subtask or "",
            "subtask_source": source or "",
            "prompt": subtask or info.task,
            "episode_index": episode,
            "frame_index": frame,
            "timestamp": float(arrays["timestamp"][frame]),
        }
