"""Synthetic episodes for the dataset tests: smooth images with a moving square (what cameras see, roughly), and
state/action values that are distinct per frame so any misalignment of rows shows up."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CAMERAS = {"head": (48, 64), "wrist": (32, 32)}
STATE_NAMES = ["joint1", "joint2", "gripper"]
ACTION_NAMES = ["joint1", "joint2", "gripper", "base_vx"]
FPS = 20


def image(camera: str, frame: int, episode: int = 0) -> np.ndarray:
    height, width = CAMERAS[camera]
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    img[..., 2] = (40 * episode + 60) % 256
    s = 8
    top, left = (2 * frame) % (height - s), (3 * frame) % (width - s)
    img[top : top + s, left : left + s] = (255, 255, 255) if camera == "head" else (0, 0, 0)
    return img


@dataclass
class SyntheticEpisode:
    task: str
    length: int
    episode: int = 0
    subtasks: list[tuple[int, str, str]] = field(default_factory=list)  # (frame, text, source)
    events: list[tuple[int, str, str]] = field(default_factory=list)  # (frame, kind, text)

    def state(self, i: int) -> np.ndarray:
        return np.array([0.01 * i + self.episode, -0.5 * i, (i % 7) / 7.0], np.float32)

    def action(self, i: int) -> np.ndarray:
        return np.array([0.01 * (i + 1) + self.episode, -0.5 * (i + 1), (i % 3) / 3.0, 1e-3 * i * i], np.float32)

    def images(self, i: int) -> dict[str, np.ndarray]:
        return {camera: image(camera, i, self.episode) for camera in CAMERAS}

    def chunk(self, i: int) -> tuple[int, int]:
        return i // 10, i % 10


def write_episode(writer, episode: SyntheticEpisode, outcome: str = "succeeded", success: bool | None = True, end=True):
    index = writer.begin_episode(episode.task)
    subtasks = {f: (t, s) for f, t, s in episode.subtasks}
    events: dict[int, list[tuple[str, str]]] = {}
    for f, kind, text in episode.events:
        events.setdefault(f, []).append((kind, text))
    for i in range(episode.length):
        for kind, text in events.get(i, []):
            writer.add_event(kind, text)
        if i in subtasks:
            writer.set_subtask(*subtasks[i])
        chunk_id, chunk_index = episode.chunk(i)
        writer.add_frame(episode.images(i), episode.state(i), episode.action(i), chunk_id, chunk_index)
    if end:
        writer.end_episode(outcome, success)
    return index


def make_writer(root):
    from policy.data.writer import LeRobotDatasetWriter

    return LeRobotDatasetWriter(root, FPS, "synthetic", CAMERAS, STATE_NAMES, ACTION_NAMES)
