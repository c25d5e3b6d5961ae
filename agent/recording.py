"""The recorder as the loop uses it: every call guarded, because a full disk must never stop the robot loop.

A failing recorder call is reported (an error event) and the loop carries on; with no recorder configured every
call is a no-op. Typed methods instead of one string-dispatching helper, so a renamed recorder method is a type
error, not a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from agent.protocols import EpisodeRecorder
from robots.types import Observation


class GuardedRecorder:
    def __init__(self, recorder: EpisodeRecorder | None, report: Callable[[str], None]) -> None:
        self.recorder = recorder
        self._report = report

    def _failed(self, what: str, exc: Exception) -> None:
        self._report(f"{what} failed: {exc}")

    def start(self, task: str) -> int | None:
        if self.recorder is None:
            return None
        try:
            return self.recorder.start(task)
        except Exception as exc:
            self._failed("start", exc)
            return None

    def record(self, obs: Observation, action: np.ndarray, chunk_id: int, chunk_index: int) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.record(obs, action, chunk_id, chunk_index)
        except Exception as exc:
            self._failed("record", exc)

    def subtask(self, text: str, source: str) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.subtask(text, source)
        except Exception as exc:
            self._failed("subtask", exc)

    def event(self, kind: str, text: str) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.event(kind, text)
        except Exception as exc:
            self._failed("event", exc)

    def finish(self, outcome: str, success: bool | None) -> Path | None:
        if self.recorder is None:
            return None
        try:
            return self.recorder.finish(outcome, success)
        except Exception as exc:
            self._failed("finish", exc)
            return None
