"""Why a task is paused: a set of causes, each with the reason a person reads, and the decision they add up to.

Several things can hold a task at once (the operator pressed pause, the e-stop is latched, the worker is late,
System 2 is unreachable, a coach-only task waits for its first subtask). The task runs only when no cause is
left, and the reason shown is the most important cause still present, so releasing the e-stop while the worker is
still gone changes the reason instead of starting the robot. Pure bookkeeping: the loop applies the changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PauseCause(StrEnum):
    """Who holds the task; the order here is the order reasons are shown in (most important first)."""

    ESTOP = "e-stop"
    OPERATOR = "operator"
    WORKER = "worker"
    SYSTEM2 = "system2"
    COACH = "coach"


PRIORITY: tuple[PauseCause, ...] = tuple(PauseCause)


@dataclass(frozen=True)
class PauseChange:
    """What one add/remove did: whether the task must stop or may run again, and the reason to show now."""

    paused: bool  # the task is paused after the change
    was_paused: bool
    cause: PauseCause
    reason: str | None  # the reason now shown: the top remaining cause's, or the resume reason
    was_reason: str | None = None  # the reason shown before the change

    @property
    def shown_reason_changed(self) -> bool:
        return self.reason != self.was_reason

    @property
    def started_pause(self) -> bool:
        return self.paused and not self.was_paused

    @property
    def ended_pause(self) -> bool:
        return self.was_paused and not self.paused


class PauseCauses:
    """The causes holding one task. `add`/`remove` return a PauseChange, or None when nothing changed."""

    def __init__(self) -> None:
        self._reasons: dict[PauseCause, str] = {}

    def __contains__(self, cause: object) -> bool:
        return cause in self._reasons

    @property
    def paused(self) -> bool:
        return bool(self._reasons)

    @property
    def reason(self) -> str | None:
        """The reason of the most important cause still holding the task (None when it may run)."""
        for cause in PRIORITY:
            if cause in self._reasons:
                return self._reasons[cause]
        return None

    @property
    def top(self) -> PauseCause | None:
        return next((cause for cause in PRIORITY if cause in self._reasons), None)

    def as_dict(self) -> dict[str, str]:
        return {cause.value: self._reasons[cause] for cause in PRIORITY if cause in self._reasons}

    def add(self, cause: PauseCause, reason: str) -> PauseChange | None:
        was, was_reason = self.paused, self.reason
        if self._reasons.get(cause) == reason:
            return None
        self._reasons[cause] = reason
        return PauseChange(paused=True, was_paused=was, cause=cause, reason=self.reason, was_reason=was_reason)

    def remove(self, cause: PauseCause, resume_reason: str) -> PauseChange | None:
        """Drop `cause`; when it was the last one the change carries `resume_reason` (why the task runs again)."""
        if cause not in self._reasons:
            return None
        was_reason = self.reason
        del self._reasons[cause]
        paused = self.paused
        return PauseChange(
            paused=paused,
            was_paused=True,
            cause=cause,
            reason=self.reason if paused else resume_reason,
            was_reason=was_reason,
        )

    def clear(self) -> None:
        self._reasons.clear()
