"""The running episode's crash journal: everything add_frame received, on disk, in a form a SIGKILL cannot corrupt.

Why: the MP4 being encoded is unreadable until its index is written at the end, so a crash mid-episode would lose
the whole episode. Every frame is therefore also appended (unbuffered, one write per array) to fixed-size record
files: raw camera frames, then the frame's scalars. A frame counts once its scalar record is complete, so recovery
reads min(records) frames and can rebuild the episode exactly. Subtasks and events go to a JSON-lines file; a torn
last line is ignored. The journal is deleted once the episode is committed.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

HEADER = "header.json"
FRAMES = "frames.bin"
LANGUAGE = "language.jsonl"


def _raw_name(camera: str) -> str:
    return f"camera-{camera}.raw"


@dataclass
class JournalHeader:
    episode_index: int
    task: str
    fps: int
    camera_shapes: dict[str, tuple[int, int]]
    state_dim: int
    action_dim: int
    started_at: float
    metadata: dict[str, Any]

    @property
    def record_bytes(self) -> int:
        return 4 * (self.state_dim + self.action_dim) + 16

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "camera_shapes": {k: list(v) for k, v in self.camera_shapes.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JournalHeader:
        data = dict(data)
        data["camera_shapes"] = {k: (int(v[0]), int(v[1])) for k, v in data["camera_shapes"].items()}
        return cls(**data)


class EpisodeJournal:
    """Append-only files in one staging folder; `open_new` starts one, `load` reads back what survived a crash."""

    def __init__(self, folder: Path, header: JournalHeader):
        self.folder = Path(folder)
        self.header = header
        self._frames = None
        self._raw: dict[str, Any] = {}
        self._language = None

    @classmethod
    def open_new(cls, folder: Path, header: JournalHeader) -> EpisodeJournal:
        folder = Path(folder)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / HEADER).write_text(json.dumps(header.to_json()))
        journal = cls(folder, header)
        # buffering=0: each write() is a system call, so a frame handed to the kernel survives the process being killed
        journal._frames = open(folder / FRAMES, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        journal._language = open(folder / LANGUAGE, "ab", buffering=0)  # noqa: SIM115
        for camera in header.camera_shapes:
            journal._raw[camera] = open(folder / _raw_name(camera), "ab", buffering=0)  # noqa: SIM115
        return journal

    def append_frame(
        self, images: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray, chunk_id: int, chunk_index: int
    ) -> None:
        for camera, handle in self._raw.items():
            handle.write(np.ascontiguousarray(images[camera]).tobytes())
        record = (
            np.asarray(state, np.float32).tobytes()
            + np.asarray(action, np.float32).tobytes()
            + np.array([chunk_id, chunk_index], np.int64).tobytes()
        )
        self._frames.write(record)

    def append_language(self, entry: dict[str, Any]) -> None:
        self._language.write((json.dumps(entry) + "\n").encode())

    def close(self) -> None:
        for handle in [self._frames, self._language, *self._raw.values()]:
            if handle is not None:
                handle.close()
        self._frames, self._language, self._raw = None, None, {}

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # ---- reading back --------------------------------------------------------------------------------
    @classmethod
    def load_header(cls, folder: Path) -> JournalHeader:
        return JournalHeader.from_json(json.loads((Path(folder) / HEADER).read_text()))

    def complete_frames(self) -> int:
        """Frames whose scalar record and every camera image are fully on disk."""
        counts = [(self.folder / FRAMES).stat().st_size // self.header.record_bytes]
        for camera, (height, width) in self.header.camera_shapes.items():
            path = self.folder / _raw_name(camera)
            counts.append(path.stat().st_size // (height * width * 3) if path.exists() else 0)
        return int(min(counts))

    def scalars(self, count: int) -> dict[str, np.ndarray]:
        h = self.header
        raw = np.fromfile(self.folder / FRAMES, dtype=np.uint8, count=count * h.record_bytes).reshape(
            count, h.record_bytes
        )
        floats = raw[:, : 4 * (h.state_dim + h.action_dim)].copy().view(np.float32)
        ints = raw[:, 4 * (h.state_dim + h.action_dim) :].copy().view(np.int64)
        return {
            "state": floats[:, : h.state_dim],
            "action": floats[:, h.state_dim :],
            "chunk_id": ints[:, 0],
            "chunk_index": ints[:, 1],
        }

    def images(self, camera: str, count: int) -> np.ndarray:
        """Memory-mapped [count, H, W, 3] uint8 frames of one camera."""
        height, width = self.header.camera_shapes[camera]
        if count == 0:
            return np.zeros((0, height, width, 3), np.uint8)
        return np.memmap(self.folder / _raw_name(camera), dtype=np.uint8, mode="r", shape=(count, height, width, 3))

    def language(self) -> list[dict[str, Any]]:
        path = self.folder / LANGUAGE
        if not path.exists():
            return []
        entries = []
        for line in path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # the line being written when the process died
                logger.warning("ignoring a torn journal line in %s", path)
        return entries
