"""Agent-level data model: subtasks and the task lifecycle state machine.

The allowed transitions live here so the orchestrator, the store and the API agree on what can happen.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator


class SubtaskSource(StrEnum):
    POLICY = "policy"
    COACH = "coach"
    API = "api"
    EXPERT = "expert"


class Subtask(BaseModel):
    """A textual subtask ("pick up the cup") with who set it and when it was active."""

    text: str
    source: SubtaskSource
    started_at: float = Field(default_factory=time.time)
    ended_at: float | None = None

    @field_validator("text")
    @classmethod
    def _non_empty(cls, text: str) -> str:
        text = " ".join(text.split())
        if not text:
            raise ValueError("subtask text must be a non-empty string")
        return text


class PauseEntry(BaseModel):
    """One pause or resume of a task, with who caused it and the reason a person reads (task record, API, console)."""

    ts: float = Field(default_factory=time.time)
    action: Literal["pause", "resume", "reason"]  # "reason": still paused, but the reason shown changed
    cause: str | None = None  # agent.pauses.PauseCause value of the cause added or removed
    reason: str


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    STOPPED_BY_ESTOP = "stopped-by-e-stop"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.ABORTED, TaskState.STOPPED_BY_ESTOP, TaskState.INTERRUPTED}
)

ALLOWED_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.ABORTED, TaskState.INTERRUPTED}),
    TaskState.RUNNING: frozenset(
        {
            TaskState.PAUSED,
            TaskState.SUCCEEDED,
            TaskState.FAILED,
            TaskState.ABORTED,
            TaskState.STOPPED_BY_ESTOP,
            TaskState.INTERRUPTED,
        }
    ),
    TaskState.PAUSED: frozenset(
        {TaskState.RUNNING, TaskState.ABORTED, TaskState.STOPPED_BY_ESTOP, TaskState.FAILED, TaskState.INTERRUPTED}
    ),
}


class InvalidTransition(ValueError):
    """Raised when a task is asked to move between states the lifecycle does not allow."""


def check_transition(current: TaskState, target: TaskState) -> None:
    """Raise InvalidTransition unless `current -> target` is an allowed lifecycle step."""
    if target not in ALLOWED_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"task cannot go from {current.value!r} to {target.value!r}")
