"""LeRobotDatasetReader: episodes, frames, videos and normalization stats of a LeRobotDataset v3.0 folder.

It trusts `meta/episodes` (the writer's commit point) over info.json's totals, so a dataset read while a writer is
committing is always a consistent snapshot. It reads datasets written by other tools too (several episodes per
data file or MP4, no hearth columns): subtasks and events then come from the language columns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from policy.data import layout
from policy.data.video import decode_range

logger = logging.getLogger(__name__)


@dataclass
class EpisodeInfo:
    """One finished episode. subtasks: [{text, source, frame_index, timestamp}]; events: [{kind, text, frame_index, timestamp}]."""

    index: int
    task: str
    length: int
    outcome: str | None
    success: bool | None
    subtasks: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    recorded_at: float | None = None
    recovered: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    from_index: int = 0
    to_index: int = 0

    @property
    def episode_index(self) -> int:
        return self.index

    def duration_s(self, fps: float) -> float:
        return self.length / fps

    def subtask_at(self, frame_index: int) -> tuple[str, str] | tuple[None, None]:
        """(text, source) of the subtask in force at a frame, or (None, None) before the first one."""
        current: tuple[str, str] | tuple[None, None] = (None, None)
        for s in self.subtasks:
            if s["frame_index"] <= frame_index:
                current = (s["text"], s["source"])
        return current

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Frame:
    """One recorded control tick, with its decoded camera images."""

    episode_index: int
    frame_index: int
    index: int
    timestamp: float
    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    chunk_id: int
    chunk_index: int
    task: str
    subtask: str | None
    subtask_source: str | None
    events: list[dict[str, Any]]


class LeRobotDatasetReader:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / layout.INFO_PATH
        if not info_path.exists():
            raise FileNotFoundError(f"{self.root} is not a LeRobotDataset (no {layout.INFO_PATH})")
        self.info: dict[str, Any] = json.loads(info_path.read_text())
        version = str(self.info.get("codebase_version", ""))
        if not version.startswith("v3."):
            raise ValueError(
                f"{self.root}: codebase_version {version!r} is not v3.x (convert v2.1 datasets with LeRobot)"
            )
        self.fps = float(self.info["fps"])
        self.features: dict[str, Any] = self.info.get("features", {})
        self.camera_names = layout.camera_names_of(self.features)
        self.state_names = list(self.features.get(layout.STATE, {}).get("names") or [])
        self.action_names = list(self.features.get(layout.ACTION, {}).get("names") or [])
        self.tasks = self._load_tasks()
        self._rows = self._load_episode_rows()
        self.episodes: list[EpisodeInfo] = [self._episode_info(row) for row in self._rows]
        self._by_index = {e.index: i for i, e in enumerate(self.episodes)}
        self._data_cache: tuple[Path, Any] | None = None
        self._full_rows: dict[int, dict[str, Any]] | None = None

    # ---- metadata ------------------------------------------------------------------------------------
    def _load_tasks(self) -> list[str]:
        path = self.root / layout.TASKS_PATH
        if not path.exists():
            return []
        frame = pd.read_parquet(path)
        ordered = sorted(zip(frame["task_index"], frame.index, strict=True))
        return [str(task) for _, task in ordered]

    def _load_episode_rows(self) -> list[dict[str, Any]]:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        rows: list[dict[str, Any]] = []
        for path in files:
            table = pq.read_table(path)
            keep = [c for c in table.column_names if not c.startswith("stats/")]
            rows.extend(table.select(keep).to_pylist())
        rows.sort(key=lambda r: int(r["episode_index"]))
        return rows

    def _episode_info(self, row: dict[str, Any]) -> EpisodeInfo:
        tasks = list(row.get("tasks") or [])
        index = int(row["episode_index"])
        if "hearth/subtasks" in row and row["hearth/subtasks"] is not None:
            subtasks = json.loads(row["hearth/subtasks"])
            events = json.loads(row.get("hearth/events") or "[]")
        else:
            subtasks, events = self._language_timeline(row)
        success = row.get("hearth/success")
        return EpisodeInfo(
            index=index,
            task=tasks[0] if tasks else "",
            length=int(row["length"]),
            outcome=row.get("hearth/outcome"),
            success=None if success is None else bool(success),
            subtasks=subtasks,
            events=events,
            recorded_at=row.get("hearth/recorded_at"),
            recovered=bool(row.get("hearth/recovered") or False),
            metadata=json.loads(row.get("hearth/metadata") or "{}"),
            from_index=int(row["dataset_from_index"]),
            to_index=int(row["dataset_to_index"]),
        )

    def _language_timeline(self, row: dict[str, Any]) -> tuple[list[dict], list[dict]]:
        """Subtasks/events of a dataset written by another tool, from its language columns (if any)."""
        table = self._episode_table(int(row["episode_index"]), row)
        if layout.LANGUAGE_PERSISTENT not in table.column_names:
            return [], []
        subtasks, events = [], []
        persistent = table.column(layout.LANGUAGE_PERSISTENT)[0].as_py() or []
        for item in persistent:
            if item.get("style") == "subtask":
                ts = float(item["timestamp"])
                subtasks.append(
                    {
                        "text": item["content"],
                        "source": "coach" if item["role"] == "user" else "policy",
                        "frame_index": round(ts * self.fps),
                        "timestamp": ts,
                    }
                )
        if layout.LANGUAGE_EVENTS in table.column_names:
            frames = table.column("frame_index").to_pylist()
            for frame, items in zip(frames, table.column(layout.LANGUAGE_EVENTS).to_pylist(), strict=True):
                for item in items or []:
                    kind = item.get("style") or item.get("role")
                    events.append(
                        {
                            "kind": kind,
                            "text": item.get("content"),
                            "frame_index": int(frame),
                            "timestamp": frame / self.fps,
                        }
                    )
        return subtasks, events

    def episode(self, episode_index: int) -> EpisodeInfo:
        try:
            return self.episodes[self._by_index[int(episode_index)]]
        except KeyError:
            raise KeyError(
                f"{self.root} has no episode {episode_index}; it has {len(self.episodes)} episodes"
            ) from None

    def episode_row(self, episode_index: int) -> dict[str, Any]:
        """The raw meta/episodes row (with its per-episode stats columns)."""
        self.episode(episode_index)
        if self._full_rows is None:  # with stats columns; read once, merges ask for every episode
            self._full_rows = {}
            for path in sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
                for row in pq.read_table(path).to_pylist():
                    self._full_rows[int(row["episode_index"])] = row
        return self._full_rows[int(episode_index)]

    @property
    def num_frames(self) -> int:
        return int(sum(e.length for e in self.episodes))

    # ---- data ------------------------------------------------------------------------------------------
    def _episode_table(self, episode_index: int, row: dict[str, Any] | None = None):
        row = row or self._rows[self._by_index[int(episode_index)]]
        path = self.root / self.info["data_path"].format(
            chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"])
        )
        if self._data_cache is None or self._data_cache[0] != path:
            self._data_cache = (path, pq.read_table(path))
        table = self._data_cache[1]
        table = table.filter(pc.equal(table.column("episode_index"), int(episode_index)))
        if table.num_rows != int(row["length"]):
            raise ValueError(f"{path}: episode {episode_index} has {table.num_rows} rows, meta says {row['length']}")
        return table.sort_by("frame_index")

    def episode_arrays(self, episode_index: int) -> dict[str, Any]:
        """Scalar columns of an episode as numpy arrays (no video decoding), plus its subtask/event timeline."""
        info = self.episode(episode_index)
        table = self._episode_table(episode_index)

        def vectors(name: str, dim: int) -> np.ndarray:
            column = table.column(name).combine_chunks()
            return np.asarray(column.flatten(), dtype=np.float32).reshape(table.num_rows, dim)

        def ints(name: str) -> np.ndarray:
            if name not in table.column_names:
                return np.full(table.num_rows, -1, np.int64)
            return np.asarray(table.column(name), dtype=np.int64)

        return {
            "state": vectors(layout.STATE, len(self.state_names)),
            "action": vectors(layout.ACTION, len(self.action_names)),
            "timestamp": np.asarray(table.column("timestamp"), dtype=np.float32),
            "frame_index": ints("frame_index"),
            "index": ints("index"),
            "task_index": ints("task_index"),
            "chunk_id": ints(layout.CHUNK_ID),
            "chunk_index": ints(layout.CHUNK_INDEX),
            "language": {"subtasks": list(info.subtasks), "events": list(info.events)},
        }

    def video_path(self, episode_index: int, camera: str) -> Path:
        if camera not in self.camera_names:
            raise KeyError(f"unknown camera {camera!r}; this dataset has {self.camera_names}")
        row = self._rows[self._by_index[int(self.episode(episode_index).index)]]
        key = layout.video_key(camera)
        return self.root / self.info["video_path"].format(
            video_key=key,
            chunk_index=int(row[f"videos/{key}/chunk_index"]),
            file_index=int(row[f"videos/{key}/file_index"]),
        )

    def decode_video(self, episode_index: int, camera: str) -> np.ndarray:
        """All frames of one camera for an episode, [T, H, W, 3] uint8, timestamps checked to 1e-4 s."""
        info = self.episode(episode_index)
        row = self._rows[self._by_index[info.index]]
        start = float(row.get(f"videos/{layout.video_key(camera)}/from_timestamp", 0.0))
        return decode_range(self.video_path(episode_index, camera), start, info.length, self.fps)

    def episode_frames(self, episode_index: int, cameras: list[str] | None = None) -> Iterator[Frame]:
        info = self.episode(episode_index)
        arrays = self.episode_arrays(episode_index)
        videos = {camera: self.decode_video(episode_index, camera) for camera in (cameras or self.camera_names)}
        events_at: dict[int, list[dict[str, Any]]] = {}
        for event in info.events:
            events_at.setdefault(int(event["frame_index"]), []).append(event)
        for i in range(info.length):
            text, source = info.subtask_at(i)
            yield Frame(
                episode_index=info.index,
                frame_index=int(arrays["frame_index"][i]),
                index=int(arrays["index"][i]),
                timestamp=float(arrays["timestamp"][i]),
                images={camera: frames[i] for camera, frames in videos.items()},
                state=arrays["state"][i],
                action=arrays["action"][i],
                chunk_id=int(arrays["chunk_id"][i]),
                chunk_index=int(arrays["chunk_index"][i]),
                task=info.task,
                subtask=text,
                subtask_source=source,
                events=events_at.get(i, []),
            )

    # ---- statistics --------------------------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """meta/stats.json as arrays (LeRobot's aggregated stats)."""
        from policy.data.stats import from_json

        path = self.root / layout.STATS_PATH
        return from_json(json.loads(path.read_text())) if path.exists() else {}

    def norm_stats(self, episodes: list[int] | None = None):
        """Exact quantile stats of state and actions over every frame (openpi's keys "state" and "actions").

        Why not stats.json's q01/q99: LeRobot aggregates quantiles across episodes as an envelope (the widest
        episode wins), which over-stretches the range for small datasets; the policy wants the true quantiles.
        """
        from policy.normalize import NormStats

        chosen = episodes if episodes is not None else [e.index for e in self.episodes]
        if not chosen:
            raise ValueError(f"{self.root} has no episodes to compute normalization stats from")
        states, actions = [], []
        for index in chosen:
            arrays = self.episode_arrays(index)
            states.append(arrays["state"])
            actions.append(arrays["action"])
        return NormStats.from_arrays({"state": np.concatenate(states), "actions": np.concatenate(actions)})
