"""EpisodeRecorder: records a robot's episodes off the control thread.

The control loop must never wait for video encoding or disk, so every call here only validates its input (cheap,
on the caller's thread, so bad input still fails loudly where it came from), copies the images, and queues the work
for one writer thread that owns the LeRobotDatasetWriter. `start` and `finish` wait for that thread: they mark
episode boundaries, where waiting is acceptable and the caller needs the episode index and a flushed dataset.

Videos are written at each camera's operator size (`CameraSpec.operator_shape`): recordings are for people to
review, so they get the sharp operator render when the robot makes one, not the small frames the policy reads.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from policy.data.writer import LeRobotDatasetWriter
from robots.types import Observation, RobotDescription

logger = logging.getLogger(__name__)

BACKLOG_WARNING = 200  # queued frames; beyond this the writer is not keeping up with the control rate


class RecorderError(RuntimeError):
    """The writer thread failed; the message carries its error. The current episode is discarded."""


class EpisodeRecorder:
    def __init__(
        self, root: str | Path, description: RobotDescription, finish_timeout_s: float = 300.0, live_video: bool = True
    ):
        self.root = Path(root)
        self.description = description
        self.finish_timeout_s = finish_timeout_s
        self._writer = LeRobotDatasetWriter(
            self.root,
            fps=description.control_hz,
            robot_type=description.robot_type,
            camera_shapes={c.name: c.operator_shape for c in description.cameras},
            state_names=description.state_names,
            action_names=description.action_names,
            live=live_video,
            robot_interface_version=description.interface_version,
        )
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple, Future | None]] = queue.Queue()
        self._error: BaseException | None = None
        self._active = False
        self._closed = False
        self._warned_backlog = False
        self._thread = threading.Thread(target=self._run, name=f"recorder:{self.root.name}", daemon=True)
        self._thread.start()

    # ---- caller side -------------------------------------------------------------------------------
    def start(self, task: str, metadata: dict[str, Any] | None = None) -> int:
        """Begin an episode (an unfinished previous one is discarded); returns its episode index."""
        self._check_usable()
        if self._active:
            self._submit(self._writer.discard_episode, "a new episode started before this one finished")
        index = self._call(self._writer.begin_episode, task, metadata)
        self._active = True
        return int(index)

    def record(self, obs: Observation, action: np.ndarray, chunk_id: int = -1, chunk_index: int = -1) -> None:
        """Queue one control tick (observation acted on + action executed); returns at once."""
        self._check_usable()
        if not self._active:
            raise RecorderError("record() called with no episode started; call start(task) first")
        frames = {name: obs.operator_image(name) for name in self._writer.camera_shapes if name in obs.images}
        self._writer.validate_frame(frames, obs.state, action)
        # copies: a robot may reuse its image buffers for the next tick before the writer thread gets to them
        images = {name: np.array(frames[name], copy=True) for name in self._writer.camera_shapes}
        state = np.array(obs.state, dtype=np.float32, copy=True)
        action = np.array(action, dtype=np.float32, copy=True)
        self._submit(self._writer.add_frame, images, state, action, int(chunk_id), int(chunk_index))
        backlog = self._queue.qsize()
        if backlog > BACKLOG_WARNING and not self._warned_backlog:
            self._warned_backlog = True
            logger.warning("recorder backlog is %d frames: the writer is slower than the control rate", backlog)
        elif backlog < BACKLOG_WARNING // 2:
            self._warned_backlog = False

    def subtask(self, text: str, source: str) -> None:
        self._check_usable()
        if self._active:
            self._submit(self._writer.set_subtask, text, source)

    def event(self, kind: str, text: str) -> None:
        self._check_usable()
        if self._active:
            self._submit(self._writer.add_event, kind, text)

    def finish(self, outcome: str, success: bool | None = None) -> Path | None:
        """End the episode and wait until it is on disk; returns the dataset root.

        Returns None when nothing was saved (no episode running, or one with no frames, which the writer drops),
        so callers never point people at an episode that does not exist.
        """
        self._check_usable()
        if not self._active:
            return None
        self._active = False
        saved = self._call(self._writer.end_episode, outcome, success)
        return self.root if saved is not None else None

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Stop the writer thread; an unfinished episode is discarded (call finish first to keep it)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put((self._stop, (), None))
        self._thread.join(timeout=self.finish_timeout_s)
        if self._thread.is_alive():
            logger.error("recorder thread did not stop within %.0f s", self.finish_timeout_s)
            return
        self._writer.close()

    # ---- plumbing ------------------------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._closed:
            raise RecorderError("the recorder is closed")
        if self._error is not None:
            error, self._error = self._error, None
            self._active = False
            raise RecorderError(f"recording failed: {error}") from error

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args, None))

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        future: Future = Future()
        self._queue.put((fn, args, future))
        return future.result(timeout=self.finish_timeout_s)

    @staticmethod
    def _stop() -> None:
        raise StopIteration

    def _run(self) -> None:
        failed_episode = False  # after a failure, the rest of that episode's queued work is dropped quietly
        while True:
            fn, args, future = self._queue.get()
            if fn == self._writer.begin_episode:
                failed_episode = False
            elif failed_episode and future is None and fn != self._stop:
                continue
            try:
                result = fn(*args)
            except StopIteration:
                return
            except BaseException as exc:
                logger.exception("recorder: %s failed", getattr(fn, "__name__", fn))
                if future is not None:
                    future.set_exception(exc)
                else:
                    self._error = exc
                    failed_episode = True
                    if self._writer.recording:
                        try:
                            self._writer.discard_episode(f"recording failed: {exc}")
                        except Exception:
                            logger.exception("recorder: discarding the failed episode failed too")
                continue
            if future is not None:
                future.set_result(result)
