"""Read one episode's per-frame numbers (timestamp, state, executed action) straight from a LeRobot v3.0 dataset.

Why not the dataset reader's frame iterator: that decodes every camera image, and plots need only the scalar
columns. v3.0 packs many episodes per parquet file under `data/`, so rows are filtered by `episode_index`;
names and fps come from `meta/info.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

STATE_KEY = "observation.state"
ACTION_KEY = "action"


class EpisodeDataUnavailable(RuntimeError):
    """The dataset or the episode's rows cannot be read."""


def _names(feature: dict[str, Any] | None, width: int, prefix: str) -> list[str]:
    names = (feature or {}).get("names")
    if isinstance(names, dict):  # some writers use {"motors": [...]}
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == width and all(isinstance(n, str) for n in names):
        return list(names)
    return [f"{prefix}_{i}" for i in range(width)]


def read_episode_data(root: Path, episode_index: int, max_points: int = 2000) -> dict[str, Any]:
    import pyarrow.dataset as ds

    info_path = root / "meta" / "info.json"
    data_dir = root / "data"
    if not data_dir.is_dir():
        raise EpisodeDataUnavailable(f"no data folder in {root}")
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        dataset = ds.dataset(str(data_dir), format="parquet")
        wanted = [c for c in ("frame_index", "timestamp", STATE_KEY, ACTION_KEY) if c in dataset.schema.names]
        table = dataset.to_table(columns=wanted, filter=ds.field("episode_index") == int(episode_index))
    except (OSError, ValueError, KeyError) as exc:
        raise EpisodeDataUnavailable(f"cannot read {root}: {exc}") from exc
    length = table.num_rows
    if length == 0:
        raise EpisodeDataUnavailable(f"episode {episode_index} has no rows in {root}")
    columns = table.to_pydict()
    frame_index = np.asarray(columns.get("frame_index", range(length)), dtype=np.int64)
    order = np.argsort(frame_index, kind="stable")
    keep = order[np.unique(np.linspace(0, length - 1, min(length, max_points)).round().astype(np.int64))]
    features = info.get("features", {})

    def matrix(key: str) -> np.ndarray:
        values = columns.get(key)
        if values is None:
            return np.zeros((length, 0), dtype=np.float64)
        return np.asarray(values, dtype=np.float64).reshape(length, -1)

    state, action = matrix(STATE_KEY), matrix(ACTION_KEY)
    fps = info.get("fps")
    timestamps = columns.get("timestamp")
    timestamp = np.asarray(timestamps, dtype=np.float64) if timestamps is not None else frame_index / float(fps or 1.0)
    return {
        "fps": float(fps) if fps else None,
        "length": int(length),
        "frame_index": frame_index[keep].tolist(),
        "timestamp": np.round(timestamp[keep], 6).tolist(),
        "state_names": _names(features.get(STATE_KEY), state.shape[1], "state"),
        "action_names": _names(features.get(ACTION_KEY), action.shape[1], "action"),
        "state": np.round(state[keep], 6).tolist(),
        "action": np.round(action[keep], 6).tolist(),
    }
