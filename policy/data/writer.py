"""LeRobotDatasetWriter: records episodes as a LeRobotDataset v3.0 that LeRobot's loader and visualizer read.

Crash safety, in one sentence: a finished episode's files are written once and never touched again, and the dataset
only learns about an episode when `meta/episodes/.../file-000.parquet` is atomically replaced (the commit point).
Everything else is derived: info.json, stats.json and tasks.parquet are rewritten after the commit, and rebuilt on
open if a crash came in between. The running episode lives in `.hearth/staging` (see staging.py); opening the
dataset again finishes it from that journal ("recovered") or discards it with a logged reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from policy.data import layout, stats
from policy.data.staging import EpisodeJournal, JournalHeader
from policy.data.video import VideoEncoder, check_frame_size, choose_codec, encode_frames

logger = logging.getLogger(__name__)

OUTCOME_RECOVERED = "interrupted"


class DatasetError(RuntimeError):
    """The dataset on disk cannot be used as asked (incompatible features, locked by another writer, ...)."""


@dataclass
class _Running:
    """The episode being recorded: its journal, live encoders and the scalars buffered for the data file."""

    header: JournalHeader
    journal: EpisodeJournal
    encoders: dict[str, VideoEncoder]
    states: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    chunk_ids: list[int] = field(default_factory=list)
    chunk_indices: list[int] = field(default_factory=list)
    language: list[dict[str, Any]] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.states)


def integer_fps(fps: float) -> int:
    value = float(fps)
    if value <= 0 or abs(value - round(value)) > 1e-9:
        raise ValueError(f"LeRobotDataset needs an integer frame rate, got fps={fps}")
    return round(value)


class LeRobotDatasetWriter:
    """Appends episodes to a dataset folder (created if missing). One writer per folder at a time (a file lock)."""

    def __init__(
        self,
        root: str | Path,
        fps: float,
        robot_type: str,
        camera_shapes: Mapping[str, tuple[int, int]],
        state_names: list[str],
        action_names: list[str],
        live: bool = True,
        robot_interface_version: int | None = None,
    ):
        """live=True: video settings that never stall other threads of the process (a control loop); False for
        offline collection, where smaller files matter more (see policy/data/video.py).

        robot_interface_version: the RobotDescription.interface_version of the recording robot, stored in info.json
        so training can tell which meaning of the action vector the data has; None keeps what the dataset says.
        """
        self.root = Path(root)
        self.live = bool(live)
        self.fps = integer_fps(fps)
        self.robot_type = robot_type
        self.robot_interface_version = None if robot_interface_version is None else int(robot_interface_version)
        self.camera_shapes = {name: (int(h), int(w)) for name, (h, w) in camera_shapes.items()}
        for name, (h, w) in self.camera_shapes.items():
            try:
                check_frame_size(h, w)
            except ValueError as exc:
                raise ValueError(f"camera {name!r}: {exc}") from None
        self.state_names = list(state_names)
        self.action_names = list(action_names)
        if not self.state_names or not self.action_names:
            raise ValueError("a dataset needs at least one state and one action dimension")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / layout.HEARTH_DIR).mkdir(exist_ok=True)
        self._lock = self._acquire_lock()
        self._running: _Running | None = None
        self._closed = False
        try:
            self.codec = self._existing_codec() or choose_codec()[2]
            self._features = layout.features(
                self.camera_shapes, self.state_names, self.action_names, self.fps, self.codec
            )
            self._episodes: list[dict[str, Any]] = self._load_episodes()
            self._tasks: dict[str, int] = self._load_tasks()
            self._check_compatible()
            self._remove_orphans()
            self._recover_staging()
            self._write_derived()
        except BaseException:
            self._release_lock()
            raise

    # ================================================================== public API
    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def num_frames(self) -> int:
        return int(sum(int(row["length"]) for row in self._episodes))

    @property
    def recording(self) -> bool:
        return self._running is not None

    def begin_episode(self, task: str, metadata: dict[str, Any] | None = None) -> int:
        """Start recording; returns the episode index the episode will have once finished."""
        self._check_open()
        if self._running is not None:
            raise DatasetError(
                f"episode {self._running.header.episode_index} is still recording; end or discard it first"
            )
        if not isinstance(task, str) or not task.strip():
            raise ValueError("an episode needs a non-empty task text")
        try:
            json.dumps(metadata or {})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"episode metadata must be JSON-serializable: {exc}") from None
        header = JournalHeader(
            episode_index=self.num_episodes,
            task=task,
            fps=self.fps,
            camera_shapes=self.camera_shapes,
            state_dim=len(self.state_names),
            action_dim=len(self.action_names),
            started_at=time.time(),
            metadata=dict(metadata or {}),
        )
        journal = EpisodeJournal.open_new(self._staging_dir, header)
        encoders = {}
        try:
            for camera, (h, w) in self.camera_shapes.items():
                encoders[camera] = VideoEncoder(self._staging_dir / f"{camera}.mp4", self.fps, h, w, live=self.live)
        except BaseException:
            for encoder in encoders.values():
                encoder.abort()
            journal.remove()
            raise
        self._running = _Running(header, journal, encoders)
        return header.episode_index

    def add_frame(
        self,
        images: Mapping[str, np.ndarray],
        state: np.ndarray,
        action: np.ndarray,
        chunk_id: int = -1,
        chunk_index: int = -1,
    ) -> int:
        """Record one control tick: the observation it acted on and the action executed. Returns the frame index."""
        running = self._require_running()
        self.validate_frame(images, state, action)
        state = np.asarray(state, np.float32).reshape(-1)
        action = np.asarray(action, np.float32).reshape(-1)
        running.journal.append_frame(images, state, action, int(chunk_id), int(chunk_index))
        for camera, encoder in running.encoders.items():
            encoder.add(images[camera])
        running.states.append(state)
        running.actions.append(action)
        running.chunk_ids.append(int(chunk_id))
        running.chunk_indices.append(int(chunk_index))
        return running.frames - 1

    def validate_frame(self, images: Mapping[str, np.ndarray], state: np.ndarray, action: np.ndarray) -> None:
        """Raise ValueError naming what is wrong with a frame (the recorder calls this on the caller's thread)."""
        for camera, (h, w) in self.camera_shapes.items():
            if camera not in images:
                raise ValueError(f"frame lacks camera {camera!r}; expected cameras {sorted(self.camera_shapes)}")
            image = images[camera]
            if not isinstance(image, np.ndarray) or image.shape != (h, w, 3) or image.dtype != np.uint8:
                got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
                raise ValueError(f"camera {camera!r} must be uint8 {(h, w, 3)}, got {got}")
        for name, value, names in (("state", state, self.state_names), ("action", action, self.action_names)):
            array = np.asarray(value)
            if array.shape != (len(names),):
                raise ValueError(f"{name} must have shape ({len(names)},) for {names}, got {array.shape}")
            if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
                raise ValueError(f"{name} must be finite numbers, got {array}")

    def set_subtask(self, text: str, source: str) -> None:
        """The subtask in force from the next recorded frame on; source is policy, coach, expert or api."""
        running = self._require_running()
        if source not in layout.SUBTASK_SOURCES:
            raise ValueError(f"subtask source must be one of {layout.SUBTASK_SOURCES}, got {source!r}")
        entry = {"type": "subtask", "text": str(text), "source": source, "frame": running.frames, "wall": time.time()}
        running.journal.append_language(entry)
        running.language.append(entry)

    def add_event(self, kind: str, text: str) -> None:
        """An event at the next recorded frame: "interjection" (coaching), "estop", "pause", "resume", ..."""
        running = self._require_running()
        if not isinstance(kind, str) or not kind:
            raise ValueError("an event needs a non-empty kind")
        entry = {"type": "event", "kind": kind, "text": str(text), "frame": running.frames, "wall": time.time()}
        running.journal.append_language(entry)
        running.language.append(entry)

    def end_episode(self, outcome: str, success: bool | None = None) -> int | None:
        """Finish and commit the episode; returns its index, or None when it had no frame (then nothing is saved)."""
        running = self._require_running()
        running.journal.append_language({"type": "end", "outcome": outcome, "success": success, "wall": time.time()})
        for encoder in running.encoders.values():
            encoder.close()
        if running.frames == 0:
            logger.warning(
                "episode %d has no frames; nothing saved (outcome %s)", running.header.episode_index, outcome
            )
            running.journal.remove()
            self._running = None
            return None
        count = running.frames
        scalars = {
            "state": np.stack(running.states),
            "action": np.stack(running.actions),
            "chunk_id": np.asarray(running.chunk_ids, np.int64),
            "chunk_index": np.asarray(running.chunk_indices, np.int64),
        }
        videos = {camera: encoder.path for camera, encoder in running.encoders.items()}
        images = {camera: running.journal.images(camera, count) for camera in self.camera_shapes}
        try:
            self._commit_recorded(running.header, scalars, images, videos, running.language, outcome, success, False)
        finally:
            images.clear()
            running.journal.remove()
            self._running = None
        return running.header.episode_index

    def discard_episode(self, reason: str) -> None:
        running = self._require_running()
        logger.warning("discarding episode %d (%d frames): %s", running.header.episode_index, running.frames, reason)
        for encoder in running.encoders.values():
            encoder.abort()
        running.journal.remove()
        self._running = None

    def close(self) -> None:
        """Release the dataset; an episode still recording is discarded (it was never finished)."""
        if self._closed:
            return
        try:
            if self._running is not None:
                self.discard_episode("writer closed while the episode was recording")
        finally:
            self._closed = True
            self._release_lock()

    def __enter__(self) -> LeRobotDatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- importing finished episodes (merging datasets) ---------------------------------------------
    def import_episode(self, reader: Any, episode_index: int) -> int:
        """Append a finished episode of another dataset (same features): data re-indexed, videos copied as they are."""
        self._check_open()
        if self._running is not None:
            raise DatasetError("cannot import while an episode is recording")
        source = next((e for e in reader.episodes if e.index == episode_index), None)
        if source is None:
            raise KeyError(f"{reader.root} has no episode {episode_index}")
        if (
            reader.fps != self.fps
            or set(reader.camera_names) != set(self.camera_shapes)
            or reader.state_names != self.state_names
            or reader.action_names != self.action_names
        ):
            raise DatasetError(f"{reader.root} has different fps, cameras, state or action names than {self.root}")
        theirs = layout.interface_version_of(reader.info)
        if theirs is not None and self.robot_interface_version is not None and theirs != self.robot_interface_version:
            raise DatasetError(
                f"{reader.root} was recorded with robot interface version {theirs}, {self.root} with "
                f"{self.robot_interface_version}"
            )
        arrays = reader.episode_arrays(episode_index)
        row = reader.episode_row(episode_index)
        new_index = self.num_episodes
        staged = self.root / layout.HEARTH_DIR / "import"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        videos = {}
        for camera in self.camera_shapes:
            src = reader.video_path(episode_index, camera)
            start = float(row.get(f"videos/{layout.video_key(camera)}/from_timestamp", 0.0))
            if start != 0.0 or src.stat().st_size == 0:
                raise DatasetError(f"{src}: only one-episode-per-file videos can be imported without re-encoding")
            videos[camera] = staged / f"{camera}.mp4"
            shutil.copyfile(src, videos[camera])
        image_stats = {
            camera: {
                name: np.asarray(row[f"stats/{layout.video_key(camera)}/{name}"])
                for name in stats.STAT_NAMES
                if f"stats/{layout.video_key(camera)}/{name}" in row
            }
            for camera in self.camera_shapes
        }
        hearth = {k: v for k, v in row.items() if k.startswith("hearth/")}
        self._commit(new_index, source.task, arrays, videos, arrays["language"], image_stats, hearth)
        shutil.rmtree(staged, ignore_errors=True)
        return new_index

    # ================================================================== commit
    def _commit_recorded(
        self,
        header: JournalHeader,
        scalars: dict[str, np.ndarray],
        images: dict[str, np.ndarray],
        videos: dict[str, Path],
        language: list[dict[str, Any]],
        outcome: str,
        success: bool | None,
        recovered: bool,
    ) -> None:
        count = len(scalars["state"])
        picks = stats.sample_indices(count)
        image_stats = {
            camera: stats.image_stats([np.asarray(frames[i]) for i in picks]) for camera, frames in images.items()
        }
        subtasks, events = _timeline(language, count, self.fps)
        hearth = {
            "hearth/outcome": str(outcome),
            "hearth/success": None if success is None else bool(success),
            "hearth/subtasks": json.dumps(subtasks),
            "hearth/events": json.dumps(events),
            "hearth/recorded_at": float(header.started_at),
            "hearth/recovered": bool(recovered),
            "hearth/metadata": json.dumps(header.metadata),
        }
        arrays = {**scalars, "language": {"subtasks": subtasks, "events": events}}
        self._commit(header.episode_index, header.task, arrays, videos, arrays["language"], image_stats, hearth)

    def _commit(
        self,
        episode_index: int,
        task: str,
        arrays: dict[str, Any],
        videos: dict[str, Path],
        language: dict[str, list[dict[str, Any]]],
        image_stats: dict[str, stats.Stats],
        hearth: dict[str, Any],
    ) -> None:
        if episode_index != self.num_episodes:
            raise DatasetError(f"episode index {episode_index} is not the next one ({self.num_episodes})")
        count = len(arrays["state"])
        task_index = self._tasks.get(task)
        new_task = task_index is None
        if new_task:
            task_index = len(self._tasks)
        from_index = self.num_frames
        table = _data_table(
            episode_index,
            task_index,
            from_index,
            self.fps,
            arrays,
            language["subtasks"],
            language["events"],
            len(self.state_names),
            len(self.action_names),
        )
        # 1. this episode's own files (not referenced by anything yet: a crash here leaves harmless orphans)
        data_file = self.root / layout.data_path(episode_index)
        layout.atomic_write_parquet(data_file, table)
        for camera, src in videos.items():
            dest = self.root / layout.video_path(camera, episode_index)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
        # 2. the task list is a superset of what episodes reference, so it goes before the commit
        if new_task:
            self._tasks[task] = task_index
            self._write_tasks()
        # 3. commit: the episodes table now lists the episode
        row = self._episode_row(episode_index, task, count, from_index, table, image_stats, hearth)
        self._write_episodes([*self._episodes, row])
        self._episodes.append(row)
        # 4. derived files
        self._write_derived()
        logger.info(
            "episode %d committed: %d frames, task %r, outcome %s",
            episode_index,
            count,
            task,
            hearth.get("hearth/outcome"),
        )

    def _episode_row(
        self,
        episode_index: int,
        task: str,
        count: int,
        from_index: int,
        table: pa.Table,
        image_stats: dict[str, stats.Stats],
        hearth: dict[str, Any],
    ) -> dict[str, Any]:
        chunk, file = layout.chunk_and_file(episode_index)
        row: dict[str, Any] = {
            "episode_index": episode_index,
            "tasks": [task],
            "length": count,
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": from_index,
            "dataset_to_index": from_index + count,
        }
        for camera in self.camera_shapes:
            key = layout.video_key(camera)
            row[f"videos/{key}/chunk_index"] = chunk
            row[f"videos/{key}/file_index"] = file
            row[f"videos/{key}/from_timestamp"] = 0.0
            row[f"videos/{key}/to_timestamp"] = count / self.fps
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        feature_stats = _table_stats(table)
        for camera, s in image_stats.items():
            feature_stats[layout.video_key(camera)] = s
        for feature, s in feature_stats.items():
            for name, value in s.items():
                row[f"stats/{feature}/{name}"] = np.asarray(value).tolist()
        row.update(hearth)
        return row

    # ================================================================== metadata files
    def _write_episodes(self, rows: list[dict[str, Any]]) -> None:
        layout.atomic_write_parquet(self.root / layout.episodes_meta_path(), pa.Table.from_pylist(rows))

    def _write_tasks(self) -> None:
        ordered = sorted(self._tasks.items(), key=lambda item: item[1])
        frame = pd.DataFrame(
            {"task_index": np.array([i for _, i in ordered], dtype=np.int64)},
            index=pd.Index([t for t, _ in ordered], name="task"),
        )
        path = self.root / layout.TASKS_PATH
        tmp = path.with_name(f".{path.name}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(tmp)
        os.replace(tmp, path)

    def _write_derived(self) -> None:
        """info.json and stats.json from the committed episodes (idempotent; also repairs after a crash)."""
        if self._episodes and any(t not in self._tasks for row in self._episodes for t in row["tasks"]):
            for row in self._episodes:
                for t in row["tasks"]:
                    self._tasks.setdefault(t, len(self._tasks))
            self._write_tasks()
        elif not (self.root / layout.TASKS_PATH).exists():
            self._write_tasks()
        info = layout.info_json(
            self.robot_type,
            self.fps,
            self._features,
            self.num_episodes,
            self.num_frames,
            len(self._tasks),
            self.robot_interface_version,
        )
        path = self.root / layout.INFO_PATH
        if not path.exists() or json.loads(path.read_text()) != json.loads(json.dumps(info)):
            layout.atomic_write_json(path, info)
        if self._episodes:
            layout.atomic_write_json(self.root / layout.STATS_PATH, stats.to_json(self._aggregate_stats()))

    def _aggregate_stats(self) -> dict[str, stats.Stats]:
        per_feature: dict[str, list[stats.Stats]] = {}
        for row in self._episodes:
            episode: dict[str, stats.Stats] = {}
            for key, value in row.items():
                if key.startswith("stats/") and value is not None:
                    feature, name = key[len("stats/") :].rsplit("/", 1)
                    episode.setdefault(feature, {})[name] = np.asarray(value)
            for feature, s in episode.items():
                per_feature.setdefault(feature, []).append(s)
        return {feature: stats.aggregate(items) for feature, items in per_feature.items()}

    # ================================================================== opening an existing dataset
    @property
    def _staging_dir(self) -> Path:
        return self.root / layout.HEARTH_DIR / "staging"

    def _acquire_lock(self) -> Any:
        handle = open(self.root / layout.HEARTH_DIR / "writer.lock", "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DatasetError(f"{self.root} is open in another writer (process); one writer per dataset") from None
        return handle

    def _release_lock(self) -> None:
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
            lock.close()

    def _check_open(self) -> None:
        if self._closed:
            raise DatasetError(f"the writer for {self.root} is closed")

    def _require_running(self) -> _Running:
        self._check_open()
        if self._running is None:
            raise DatasetError("no episode is recording; call begin_episode first")
        return self._running

    def _existing_codec(self) -> str | None:
        path = self.root / layout.INFO_PATH
        if not path.exists():
            return None
        info = json.loads(path.read_text())
        for feature in info.get("features", {}).values():
            if feature.get("dtype") == "video":
                return feature.get("info", {}).get("video.codec")
        return None

    def _load_episodes(self) -> list[dict[str, Any]]:
        path = self.root / layout.episodes_meta_path()
        if not path.exists():
            return []
        rows = pq.read_table(path).to_pylist()
        for expected, row in enumerate(rows):
            if int(row["episode_index"]) != expected:
                raise DatasetError(f"{path}: episode indices are not contiguous from 0")
            chunk, file = layout.chunk_and_file(expected)
            if row.get("data/chunk_index") != chunk or row.get("data/file_index") != file:
                raise DatasetError(
                    f"{self.root} stores several episodes per file (not written by hearth); open it with the reader only"
                )
        return rows

    def _load_tasks(self) -> dict[str, int]:
        path = self.root / layout.TASKS_PATH
        if not path.exists():
            return {}
        frame = pd.read_parquet(path)
        return {str(task): int(index) for task, index in zip(frame.index, frame["task_index"], strict=True)}

    def _check_compatible(self) -> None:
        path = self.root / layout.INFO_PATH
        if not path.exists():
            return
        info = json.loads(path.read_text())
        problems = []
        if int(info.get("fps", self.fps)) != self.fps:
            problems.append(f"fps {info.get('fps')} != {self.fps}")
        old = info.get("features", {})
        for key in (layout.STATE, layout.ACTION):
            if key in old and list(old[key].get("names") or []) != list(self._features[key]["names"]):
                problems.append(f"{key} names {old[key].get('names')} != {self._features[key]['names']}")
        old_cams = {k: tuple(v["shape"][:2]) for k, v in old.items() if v.get("dtype") == "video"}
        new_cams = {k: tuple(v["shape"][:2]) for k, v in self._features.items() if v.get("dtype") == "video"}
        if old and old_cams != new_cams:
            problems.append(f"cameras {old_cams} != {new_cams}")
        recorded = layout.interface_version_of(info)
        if recorded is None and self._episodes:
            recorded = 1  # episodes recorded before datasets stored the version: every robot spoke v1 then
        if self.robot_interface_version is None:
            self.robot_interface_version = layout.interface_version_of(info)
        elif recorded is not None and recorded != self.robot_interface_version:
            problems.append(f"robot interface version {recorded} != {self.robot_interface_version}")
        if problems:
            raise DatasetError(f"{self.root} holds a dataset with different features: " + "; ".join(problems))

    def _remove_orphans(self) -> None:
        """Files of the episode after the last committed one: left by a crash between writing them and the commit."""
        index = self.num_episodes
        paths = [self.root / layout.data_path(index)]
        paths += [self.root / layout.video_path(camera, index) for camera in self.camera_shapes]
        for path in paths:
            if path.exists():
                logger.warning("removing %s: written for episode %d, which was never committed", path, index)
                path.unlink()

    def _recover_staging(self) -> None:
        folder = self._staging_dir
        if not folder.exists():
            return
        try:
            header = EpisodeJournal.load_header(folder)
        except Exception as exc:
            logger.warning("discarding the interrupted episode in %s: its header is unreadable (%s)", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return
        journal = EpisodeJournal(folder, header)
        if header.episode_index < self.num_episodes:
            logger.info("episode %d was committed before the crash; removing its journal", header.episode_index)
            journal.remove()
            return
        if (
            header.episode_index != self.num_episodes
            or header.camera_shapes != self.camera_shapes
            or header.state_dim != len(self.state_names)
            or header.action_dim != len(self.action_names)
            or header.fps != self.fps
        ):
            logger.warning(
                "discarding interrupted episode %d: its journal does not match this dataset", header.episode_index
            )
            journal.remove()
            return
        try:
            count = journal.complete_frames()
        except OSError as exc:
            logger.warning("discarding interrupted episode %d: journal unreadable (%s)", header.episode_index, exc)
            journal.remove()
            return
        if count == 0:
            logger.warning("discarding interrupted episode %d: no complete frame was recorded", header.episode_index)
            journal.remove()
            return
        entries = journal.language()
        end = next((e for e in entries if e.get("type") == "end"), None)
        outcome = end["outcome"] if end else OUTCOME_RECOVERED
        success = end.get("success") if end else None
        videos = {}
        for camera in self.camera_shapes:
            videos[camera] = folder / f"{camera}.recovered.mp4"
            encode_frames(videos[camera], self.fps, journal.images(camera, count))
        images = {camera: journal.images(camera, count) for camera in self.camera_shapes}
        language = [e for e in entries if e.get("type") in ("subtask", "event")]
        self._commit_recorded(header, journal.scalars(count), images, videos, language, outcome, success, True)
        images.clear()
        journal.remove()
        logger.warning(
            "recovered interrupted episode %d from its journal: %d frames, outcome %r",
            header.episode_index,
            count,
            outcome,
        )


# ---- pure helpers -------------------------------------------------------------------------------------


def _timeline(language: list[dict[str, Any]], count: int, fps: int) -> tuple[list[dict], list[dict]]:
    """Subtasks and events with their frame (clamped into the episode) and frame timestamp."""
    subtasks, events = [], []
    for entry in language:
        frame = int(min(max(int(entry.get("frame", 0)), 0), count - 1))
        item = {"frame_index": frame, "timestamp": frame / fps}
        if entry.get("type") == "subtask":
            subtasks.append({"text": entry["text"], "source": entry["source"], **item})
        elif entry.get("type") == "event":
            events.append({"kind": entry["kind"], "text": entry["text"], **item})
    return subtasks, events


def persistent_rows(subtasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """language_persistent rows: style "subtask"; role "user" when a person (coach, api) set it, else "assistant"."""
    return [
        {
            "role": "user" if s["source"] in layout.HUMAN_SOURCES else "assistant",
            "content": s["text"],
            "style": "subtask",
            "timestamp": float(np.float32(s["timestamp"])),
            "camera": None,
            "tool_calls": None,
        }
        for s in subtasks
    ]


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """language_events row: coaching is a user "interjection"; operator/safety events are style-less system rows."""
    if event["kind"] == "interjection":
        return {"role": "user", "content": event["text"], "style": "interjection", "camera": None, "tool_calls": None}
    return {
        "role": "system",
        "content": f"{event['kind']}: {event['text']}",
        "style": None,
        "camera": None,
        "tool_calls": None,
    }


def _data_table(
    episode_index: int,
    task_index: int,
    from_index: int,
    fps: int,
    arrays: dict[str, Any],
    subtasks: list[dict[str, Any]],
    events: list[dict[str, Any]],
    state_dim: int,
    action_dim: int,
) -> pa.Table:
    count = len(arrays["state"])
    frame_index = np.arange(count, dtype=np.int64)
    persistent = persistent_rows(subtasks)
    per_frame_events: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for event in events:
        per_frame_events[event["frame_index"]].append(event_row(event))
    schema = layout.data_schema(state_dim, action_dim)
    storage = layout.data_schema(state_dim, action_dim, storage=True)
    columns = [
        pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(arrays["state"], np.float32).reshape(-1)), state_dim),
        pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(arrays["action"], np.float32).reshape(-1)), action_dim),
        pa.array(np.asarray(arrays["chunk_id"], np.int64)),
        pa.array(np.asarray(arrays["chunk_index"], np.int64)),
        pa.array((frame_index / fps).astype(np.float32)),
        pa.array(frame_index),
        pa.array(np.full(count, episode_index, np.int64)),
        pa.array(from_index + frame_index),
        pa.array(np.full(count, task_index, np.int64)),
        pa.array([persistent] * count, type=storage.field(layout.LANGUAGE_PERSISTENT).type),
        pa.array(per_frame_events, type=storage.field(layout.LANGUAGE_EVENTS).type),
    ]
    return pa.Table.from_arrays(columns, schema=storage).cast(schema)


def _table_stats(table: pa.Table) -> dict[str, stats.Stats]:
    """Stats of every numeric column of an episode's data table (vectors per dimension, scalars as shape [1])."""
    out = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_fixed_size_list(column.type):
            values = np.asarray(column.combine_chunks().flatten()).reshape(len(table), column.type.list_size)
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            values = np.asarray(column).reshape(-1, 1)
        else:
            continue
        out[name] = stats.vector_stats(values)
    return out
