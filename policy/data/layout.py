"""LeRobotDataset v3.0 on-disk layout: paths, the features block of info.json, and the Arrow schemas of our files.

One place for every name and type the format fixes (huggingface/lerobot src/lerobot/datasets/utils.py), so the writer, the reader, the merger
and the schema test agree. We write one data file and one MP4 per camera per episode (file_index = episode % 1000,
chunk_index = episode // 1000): legal in v3.0 because every lookup goes through meta/episodes, and it means a finished
episode's files are never reopened, which is what makes crash safety simple.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
HEARTH_DIR = ".hearth"  # staging of the running episode and the writer lock; not part of the format
# info.json key (ours, additive): the RobotDescription.interface_version the episodes were recorded with
INTERFACE_VERSION_KEY = "hearth_robot_interface_version"

STATE = "observation.state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."
CHUNK_ID = "hearth.chunk_id"
CHUNK_INDEX = "hearth.chunk_index"
LANGUAGE_PERSISTENT = "language_persistent"
LANGUAGE_EVENTS = "language_events"
DEFAULT_INT_FEATURES = ("frame_index", "episode_index", "index", "task_index")
SUBTASK_SOURCES = ("policy", "coach", "expert", "api")
HUMAN_SOURCES = ("coach", "api")


def video_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def chunk_and_file(episode_index: int) -> tuple[int, int]:
    return episode_index // CHUNKS_SIZE, episode_index % CHUNKS_SIZE


def data_path(episode_index: int) -> str:
    chunk, file = chunk_and_file(episode_index)
    return DATA_PATH.format(chunk_index=chunk, file_index=file)


def video_path(camera: str, episode_index: int) -> str:
    chunk, file = chunk_and_file(episode_index)
    return VIDEO_PATH.format(video_key=video_key(camera), chunk_index=chunk, file_index=file)


def episodes_meta_path() -> str:
    return EPISODES_PATH.format(chunk_index=0, file_index=0)


def json_type(storage: bool = False) -> pa.DataType:
    """Arrow's JSON extension type (what LeRobot declares for tool_calls); `storage` gives its plain string storage,
    because pyarrow cannot build extension values from Python objects directly (we build as strings, then cast)."""
    return pa.json_() if hasattr(pa, "json_") and not storage else pa.string()


def persistent_row_type(storage: bool = False) -> pa.StructType:
    return pa.struct(
        [
            pa.field("role", pa.string(), nullable=False),
            pa.field("content", pa.string()),
            pa.field("style", pa.string()),
            pa.field("timestamp", pa.float32(), nullable=False),
            pa.field("camera", pa.string()),
            pa.field("tool_calls", pa.list_(json_type(storage))),
        ]
    )


def event_row_type(storage: bool = False) -> pa.StructType:
    return pa.struct(
        [
            pa.field("role", pa.string(), nullable=False),
            pa.field("content", pa.string()),
            pa.field("style", pa.string()),
            pa.field("camera", pa.string()),
            pa.field("tool_calls", pa.list_(json_type(storage))),
        ]
    )


def data_schema(state_dim: int, action_dim: int, storage: bool = False) -> pa.Schema:
    """Columns of data/*.parquet in LeRobot's order: features first, then the five default columns, then language."""
    return pa.schema(
        [
            pa.field(STATE, pa.list_(pa.float32(), state_dim)),
            pa.field(ACTION, pa.list_(pa.float32(), action_dim)),
            pa.field(CHUNK_ID, pa.int64()),
            pa.field(CHUNK_INDEX, pa.int64()),
            pa.field("timestamp", pa.float32()),
            pa.field("frame_index", pa.int64()),
            pa.field("episode_index", pa.int64()),
            pa.field("index", pa.int64()),
            pa.field("task_index", pa.int64()),
            pa.field(LANGUAGE_PERSISTENT, pa.list_(persistent_row_type(storage))),
            pa.field(LANGUAGE_EVENTS, pa.list_(event_row_type(storage))),
        ]
    )


def features(
    camera_shapes: dict[str, tuple[int, int]],
    state_names: list[str],
    action_names: list[str],
    fps: int,
    codec: str,
) -> dict[str, dict[str, Any]]:
    """The `features` block of info.json (video shapes are HWC with names height/width/channels)."""
    out: dict[str, dict[str, Any]] = {}
    for camera, (height, width) in camera_shapes.items():
        out[video_key(camera)] = {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": height,
                "video.width": width,
                "video.codec": codec,
                "video.pix_fmt": "yuv420p",
                "is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "video.g": 2,
                "has_audio": False,
            },
        }
    out[STATE] = {"dtype": "float32", "shape": [len(state_names)], "names": list(state_names)}
    out[ACTION] = {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)}
    out[CHUNK_ID] = {"dtype": "int64", "shape": [1], "names": None}
    out[CHUNK_INDEX] = {"dtype": "int64", "shape": [1], "names": None}
    out["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for name in DEFAULT_INT_FEATURES:
        out[name] = {"dtype": "int64", "shape": [1], "names": None}
    out[LANGUAGE_PERSISTENT] = {"dtype": "language", "shape": [1], "names": None}
    out[LANGUAGE_EVENTS] = {"dtype": "language", "shape": [1], "names": None}
    return out


def info_json(
    robot_type: str,
    fps: int,
    feature_block: dict[str, dict[str, Any]],
    total_episodes: int,
    total_frames: int,
    total_tasks: int,
    robot_interface_version: int | None = None,
) -> dict[str, Any]:
    has_video = any(f.get("dtype") == "video" for f in feature_block.values())
    version = {} if robot_interface_version is None else {INTERFACE_VERSION_KEY: int(robot_interface_version)}
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        **version,
        "total_episodes": total_episodes,
        "total_frames": total_frames,
        "total_tasks": total_tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_MB,
        "fps": fps,
        "splits": {"train": f"0:{total_episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None,
        "features": feature_block,
    }


def interface_version_of(info: dict[str, Any]) -> int | None:
    """The robot interface version a dataset was recorded with; None when not recorded (older or foreign data)."""
    value = info.get(INTERFACE_VERSION_KEY)
    return None if value is None else int(value)


def camera_names_of(feature_block: dict[str, dict[str, Any]]) -> list[str]:
    return [key[len(IMAGE_PREFIX) :] for key, f in feature_block.items() if key.startswith(IMAGE_PREFIX)]


# ---- atomic file replacement ----------------------------------------------------------------------


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync, then rename over `path`: readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="snappy")
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
