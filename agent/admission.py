"""Whether a robot takes a new task: checked once, when the task is created, so a task that can never run is
refused with a reason instead of being accepted and then pausing forever at the head of the queue.

Checks, in order: the robot's closed task list (a robot that lists its tasks has a success check for exactly
those; another text is refused unless the caller says `allow_unlisted`, and then the task carries the warning),
the policy's prompt token budget (agent/prompt_budget.py), and the queue bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.prompt_budget import PromptBudget

NO_SUCCESS_CHECK = "no success check for this task"


class TaskRejected(ValueError):
    """A task the robot will not take; `code` is machine-readable, `status` the HTTP status the API answers."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class Admission:
    """An accepted task's text (normalized) and the warnings it carries for its whole life."""

    text: str
    warnings: list[str] = field(default_factory=list)


def task_key(text: str) -> str:
    """How a robot's task list matches text: case, extra spaces and final punctuation ignored (robots/sim/tasks.py)."""
    return " ".join(text.strip().lower().rstrip(".!?").split())


class TaskAdmission:
    """One robot's admission rules. `known_tasks` empty means the robot takes any text (an open task list)."""

    def __init__(self, known_tasks: Sequence[str], budget: PromptBudget | None, max_queued: int) -> None:
        if max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {max_queued}")
        self.known_tasks = list(known_tasks)
        self._known_keys = {task_key(t) for t in self.known_tasks}
        self.budget = budget
        self.max_queued = max_queued

    def listed(self, text: str) -> bool:
        return not self._known_keys or task_key(text) in self._known_keys

    def check(self, text: str, queued: int, allow_unlisted: bool = False) -> Admission:
        """The admission, or TaskRejected (422 unknown_task / task_too_long_for_policy, 429 queue_full)."""
        text = " ".join(str(text).split())
        if not text:
            raise TaskRejected(422, "task_text_empty", "task text must contain words")
        warnings = []
        if not self.listed(text):
            if not allow_unlisted:
                known = ", ".join(repr(t) for t in self.known_tasks)
                raise TaskRejected(
                    422,
                    "unknown_task",
                    f'this robot does not know the task {text!r}; known tasks: {known}. Send "allow_unlisted": true '
                    "to run it anyway (it will have no success check)",
                    {"known_tasks": self.known_tasks},
                )
            warnings.append(NO_SUCCESS_CHECK)
        if self.budget is not None:
            count = self.budget.measure(text)
            if not count.fits:
                raise TaskRejected(
                    422,
                    "task_too_long_for_policy",
                    f"task needs {count.tokens} prompt tokens but this policy accepts at most {count.limit}; "
                    "shorten the task text",
                    {"tokens": count.tokens, "limit": count.limit},
                )
        if queued >= self.max_queued:
            raise TaskRejected(
                429,
                "queue_full",
                f"{queued} tasks are already queued on this robot (limit "
                f"{self.max_queued}); wait for one to finish or abort one",
                {"limit": self.max_queued},
            )
        return Admission(text=text, warnings=warnings)
