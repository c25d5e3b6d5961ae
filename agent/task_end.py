"""When does the active task end by itself? The time limit, the robot's success check, and progress as a subtask
boundary. Pure: the loop passes the time and the robot's answers (success and progress are only asked every
`check_every` ticks; they may render or compute distances), this returns the decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.types import TaskState


@dataclass(frozen=True)
class EndDecision:
    end: tuple[TaskState, str, bool | None] | None = None  # (state, reason, success) to finish with
    progressed: bool = False  # the progress signal advanced: a subtask boundary


class EndCheck:
    def __init__(self, max_task_s: float | None, check_every: int) -> None:
        self.max_task_s = max_task_s
        self.check_every = check_every

    def decide(
        self,
        tick: int,
        elapsed_s: float,
        has_check: bool,
        success: Callable[[], bool | None],
        progress: Callable[[], float | None],
        last_progress: float | None,
    ) -> tuple[EndDecision, float | None]:
        """The decision and the progress value to remember (unchanged when not measured this tick)."""
        if self.max_task_s is not None and elapsed_s > self.max_task_s:
            ok = success() if has_check else None
            reason = f"time limit of {self.max_task_s:g}s reached"
            return EndDecision(end=(TaskState.SUCCEEDED if ok else TaskState.FAILED, reason, ok)), last_progress
        if not has_check or tick % self.check_every:
            return EndDecision(), last_progress
        if success():
            return EndDecision(end=(TaskState.SUCCEEDED, "the task's success check passed", True)), last_progress
        now = progress()
        advanced = now is not None and last_progress is not None and now > last_progress + 1e-9
        return EndDecision(progressed=advanced), now
