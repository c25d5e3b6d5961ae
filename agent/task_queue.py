"""Per-robot task queue: one running task, the others queued in order, every state change checked and announced.

The lifecycle rules live in agent.types (check_transition); this module is the only place a task's state
changes, so every transition is validated, logged and published as a "task_state" event for the API.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from pydantic import BaseModel, Field

from agent.types import PauseEntry, Subtask, SubtaskSource, TaskState, check_transition

logger = logging.getLogger(__name__)


class TaskRecord(BaseModel):
    """Everything known about one task: its text, lifecycle state (with the reason), episode and subtask trace."""

    id: str
    robot_id: str
    text: str
    state: TaskState = TaskState.QUEUED
    reason: str | None = None
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    episode_index: int | None = None
    episode_path: str | None = None
    outcome: str | None = None
    success: bool | None = None
    subtasks: list[Subtask] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list, description="e.g. 'no success check for this task'")
    pauses: list[PauseEntry] = Field(default_factory=list, description="every pause and resume, with its reason")


class UnknownTask(KeyError):
    """No task with that id on this robot."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown task"


#: Called after every transition with (record snapshot, previous state).
TransitionListener = Callable[[TaskRecord, TaskState | None], None]


class TaskQueue:
    """Thread-safe store of a robot's tasks with FIFO order for the queued ones."""

    def __init__(self, robot_id: str, on_transition: TransitionListener | None = None) -> None:
        self.robot_id = robot_id
        self._lock = threading.RLock()
        self._tasks: dict[str, TaskRecord] = {}
        self._order: list[str] = []
        self._on_transition = on_transition
        self._changed = threading.Condition(self._lock)

    # ------------------------------------------------------------------ queries
    def get(self, task_id: str) -> TaskRecord:
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None:
                raise UnknownTask(f"no task {task_id!r} on robot {self.robot_id!r}")
            return record.model_copy(deep=True)

    def all(self) -> list[TaskRecord]:
        with self._lock:
            return [self._tasks[i].model_copy(deep=True) for i in self._order]

    def active(self) -> TaskRecord | None:
        """The task that owns the robot now (running or paused), if any."""
        with self._lock:
            for task_id in self._order:
                record = self._tasks[task_id]
                if record.state in (TaskState.RUNNING, TaskState.PAUSED):
                    return record.model_copy(deep=True)
            return None

    def next_queued(self) -> TaskRecord | None:
        with self._lock:
            for task_id in self._order:
                if self._tasks[task_id].state is TaskState.QUEUED:
                    return self._tasks[task_id].model_copy(deep=True)
            return None

    def wait(self, task_id: str, timeout: float, states: set[TaskState] | None = None) -> TaskRecord:
        """Block until the task reaches one of `states` (default: any terminal state); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                record = self.get(task_id)
                if (record.state in states) if states else record.state.terminal:
                    return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"task {task_id} still {record.state.value} after {timeout}s")
                self._changed.wait(min(remaining, 0.5))

    def queued_count(self) -> int:
        with self._lock:
            return sum(1 for r in self._tasks.values() if r.state is TaskState.QUEUED)

    # ------------------------------------------------------------------ changes
    def add(self, text: str, task_id: str | None = None, warnings: list[str] | None = None) -> TaskRecord:
        text = " ".join(str(text).split())
        if not text:
            raise ValueError("task text must be a non-empty string")
        task_id = task_id or uuid.uuid4().hex[:12]
        with self._lock:
            if task_id in self._tasks:
                raise ValueError(f"task id {task_id!r} already exists on robot {self.robot_id!r}")
            record = TaskRecord(id=task_id, robot_id=self.robot_id, text=text, warnings=list(warnings or []))
            self._tasks[task_id] = record
            self._order.append(task_id)
            snapshot = record.model_copy(deep=True)
        logger.info("task queued", extra={"robot_id": self.robot_id, "task_id": task_id, "text": text})
        if self._on_transition:
            self._on_transition(snapshot, None)
        return snapshot

    def transition(self, task_id: str, target: TaskState, reason: str | None = None, **fields: object) -> TaskRecord:
        """Move a task to `target` (validated by agent.types.check_transition) and set extra fields."""
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None:
                raise UnknownTask(f"no task {task_id!r} on robot {self.robot_id!r}")
            previous = record.state
            check_transition(previous, target)
            record.state = target
            record.reason = reason
            now = time.time()
            if target is TaskState.RUNNING and record.started_at is None:
                record.started_at = now
            if target.terminal:
                record.ended_at = now
                if record.subtasks and record.subtasks[-1].ended_at is None:
                    record.subtasks[-1].ended_at = now
            for key, value in fields.items():
                setattr(record, key, value)
            snapshot = record.model_copy(deep=True)
            self._changed.notify_all()
        logger.info(
            "task transition",
            extra={
                "robot_id": self.robot_id,
                "task_id": task_id,
                "from": previous.value,
                "to": target.value,
                "reason": reason,
            },
        )
        if self._on_transition:
            self._on_transition(snapshot, previous)
        return snapshot

    def update(self, task_id: str, **fields: object) -> TaskRecord:
        """Change non-state fields (text, episode index...) without a lifecycle step."""
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None:
                raise UnknownTask(f"no task {task_id!r} on robot {self.robot_id!r}")
            for key, value in fields.items():
                setattr(record, key, value)
            return record.model_copy(deep=True)

    def note_pause(self, task_id: str, entry: PauseEntry) -> None:
        """Append a pause/resume entry to the task's record."""
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None:
                raise UnknownTask(f"no task {task_id!r} on robot {self.robot_id!r}")
            record.pauses.append(entry)

    def push_subtask(self, task_id: str, text: str, source: SubtaskSource) -> Subtask:
        with self._lock:
            record = self._tasks.get(task_id)
            if record is None:
                raise UnknownTask(f"no task {task_id!r} on robot {self.robot_id!r}")
            now = time.time()
            if record.subtasks and record.subtasks[-1].ended_at is None:
                record.subtasks[-1].ended_at = now
            subtask = Subtask(text=text, source=source, started_at=now)
            record.subtasks.append(subtask)
            return subtask.model_copy()

    def interrupt_all(self, reason: str) -> list[TaskRecord]:
        """End every non-terminal task as INTERRUPTED (runtime shutting down)."""
        with self._lock:
            ids = [i for i in self._order if not self._tasks[i].state.terminal]
        return [self.transition(i, TaskState.INTERRUPTED, reason) for i in ids]
