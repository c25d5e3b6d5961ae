"""Keep the store's episodes index in step with the LeRobot datasets on disk.

The dataset (written by the recorder) is the truth for frames and videos; the index makes listing and filtering
cheap and remembers which task produced which episode and which episodes were deleted through the API.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from agent.store import NotFound, Store, StoredEpisode

logger = logging.getLogger(__name__)


def open_reader(root: Path) -> Any:
    """H6's LeRobotDatasetReader for a dataset root (imported lazily: it pulls in pyarrow and video decoding)."""
    from policy.data.reader import LeRobotDatasetReader

    return LeRobotDatasetReader(root)


def _field(info: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if isinstance(info, dict) and name in info:
            return info[name]
        if hasattr(info, name):
            return getattr(info, name)
    return default


def _task_id_for(store: Store, robot_id: str, episode_index: int) -> str | None:
    for task in store.list_tasks(robot_id=robot_id, limit=500):
        if task.episode_index == episode_index:
            return task.id
    return None


def index_episode(store: Store, robot_id: str, root: Path, info: Any, task_id: str | None = None) -> StoredEpisode:
    index = int(_field(info, "index", "episode_index"))
    try:
        existing = store.get_episode(robot_id, index, include_deleted=True)
    except NotFound:
        existing = None
    success = _field(info, "success")
    episode = StoredEpisode(
        robot_id=robot_id,
        episode_index=index,
        root=str(root),
        task=_field(info, "task"),
        task_id=task_id or (existing.task_id if existing else None) or _task_id_for(store, robot_id, index),
        length=_field(info, "length"),
        # Once indexed, the store's outcome wins: an operator may have corrected it (POST .../label).
        outcome=existing.outcome if existing is not None and existing.outcome is not None else _field(info, "outcome"),
        success=existing.success
        if existing is not None and existing.outcome is not None
        else (None if success is None else bool(success)),
        recorded_at=existing.recorded_at if existing else float(_field(info, "recorded_at", default=time.time())),
    )
    return store.save_episode(episode)


def sync_robot(store: Store, robot_id: str, root: Path) -> int:
    """Index every finished episode of one robot's dataset; returns how many were seen. Missing datasets are fine."""
    if not (Path(root) / "meta").exists():
        return 0
    try:
        reader = open_reader(Path(root))
    except Exception:
        logger.warning("cannot read episodes dataset", extra={"robot_id": robot_id, "root": str(root)}, exc_info=True)
        return 0
    count = 0
    for info in reader.episodes:
        index_episode(store, robot_id, Path(root), info)
        count += 1
    return count


def sync_all(store: Store, roots: dict[str, Path]) -> int:
    return sum(sync_robot(store, robot_id, root) for robot_id, root in roots.items())
