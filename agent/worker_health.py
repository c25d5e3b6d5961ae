"""Is the policy worker fit to drive the robot? A pure, tick-by-tick judge with hysteresis.

Two ways a worker fails the robot: it is gone (connection refused or dropped: `unavailable`) or it is late (a
chunk request older than `late_s` while nothing is left to execute). Either pauses the task and the robot holds.

Why hysteresis: on a loaded machine chunk latency hovers around the limit; resuming at the first reply that made
it would pause and run the robot every few seconds. So a late pause ends only after `resume_replies` replies in a
row each came back within `resume_s` (stricter than the limit that caused it). While paused the loop keeps one
request out to measure this (`wants_measurement`). A lost worker is probed on its health endpoint every
`probe_s` and the task resumes when it answers. `late_pauses` / `lost_pauses` count how often each happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class WorkerStatus(StrEnum):
    UNKNOWN = "unknown"
    OK = "ok"
    LATE = "late"
    LOST = "lost"


@dataclass(frozen=True)
class HealthVerdict:
    """What the loop must do after one observation of the worker."""

    pause: str | None = None  # pause the task with this reason
    resume: str | None = None  # the worker cause is gone: resume with this reason
    use_chunk: bool = True  # execute the chunk that just arrived (False: discard it, still measuring)
    reset_executor: bool = False  # everything in flight is gone (a lost connection)
    status_event: WorkerStatus | None = None  # publish a worker event with this status
    restored: bool = False  # publish "restored"


class WorkerHealth:
    """Tracks one worker; every method takes the time (monotonic s) so tests drive it with exact numbers."""

    def __init__(self, late_s: float, resume_s: float, resume_replies: int = 2, probe_s: float = 0.5) -> None:
        if not 0 < resume_s <= late_s:
            raise ValueError(f"resume_s must be in (0, late_s={late_s}], got {resume_s}")
        if resume_replies < 1:
            raise ValueError(f"resume_replies must be >= 1, got {resume_replies}")
        self.late_s = late_s
        self.resume_s = resume_s
        self.resume_replies = resume_replies
        self.probe_s = probe_s
        self.status = WorkerStatus.UNKNOWN
        self.late_pauses = 0
        self.lost_pauses = 0
        self._good_replies = 0
        self._next_probe = 0.0
        self._probe_in_flight = False

    @property
    def holding(self) -> bool:
        """The worker is the reason the robot holds (late or lost)."""
        return self.status in (WorkerStatus.LATE, WorkerStatus.LOST)

    @property
    def wants_measurement(self) -> bool:
        """Late pause: keep one chunk request out so its latency can end the pause."""
        return self.status is WorkerStatus.LATE

    def check_late(self, now: float, oldest_request_at: float | None, has_chunk: bool) -> HealthVerdict | None:
        """Once per tick: pause when the oldest request is older than `late_s` and nothing is left to execute."""
        if self.holding or oldest_request_at is None or has_chunk:
            return None
        age = now - oldest_request_at
        if age <= self.late_s:
            return None
        self.status = WorkerStatus.LATE
        self.late_pauses += 1
        self._good_replies = 0
        return HealthVerdict(
            pause=f"policy worker late by {round(1000 * age)} ms (limit {round(1000 * self.late_s)} ms)",
            status_event=WorkerStatus.LATE,
        )

    def reply(self, latency_s: float) -> HealthVerdict:
        """A chunk came back after `latency_s`."""
        if self.status is WorkerStatus.LATE:
            if latency_s > self.resume_s:
                self._good_replies = 0
                return HealthVerdict(use_chunk=False)
            self._good_replies += 1
            if self._good_replies < self.resume_replies:
                return HealthVerdict(use_chunk=False)
            self.status = WorkerStatus.OK
            return HealthVerdict(
                resume=f"policy worker on time again ({self.resume_replies} replies within "
                f"{round(1000 * self.resume_s)} ms, last {round(1000 * latency_s)} ms)",
                restored=True,
            )
        if self.status is WorkerStatus.LOST:
            self.status = WorkerStatus.OK
            return HealthVerdict(resume="policy worker answered again", reset_executor=True, restored=True)
        self.status = WorkerStatus.OK
        return HealthVerdict()

    def unavailable(self, reason: str, now: float) -> HealthVerdict | None:
        """A request failed because the worker is gone (connection refused, dropped, timed out)."""
        self._next_probe = now + self.probe_s
        if self.status is WorkerStatus.LOST:
            return None
        self.status = WorkerStatus.LOST
        self.lost_pauses += 1
        return HealthVerdict(
            pause=f"policy worker unavailable: {reason}", reset_executor=True, status_event=WorkerStatus.LOST
        )

    def probe_due(self, now: float) -> bool:
        """Lost: time to ask the health endpoint again (marks the probe as sent)."""
        if self.status is not WorkerStatus.LOST or self._probe_in_flight or now < self._next_probe:
            return False
        self._probe_in_flight = True
        self._next_probe = now + self.probe_s
        return True

    def probe_answered(self, healthy: bool) -> HealthVerdict | None:
        self._probe_in_flight = False
        if not healthy or self.status is not WorkerStatus.LOST:
            return None
        self.status = WorkerStatus.OK
        return HealthVerdict(resume="policy worker is reachable again", reset_executor=True, restored=True)

    def warmed_up(self) -> None:
        """The first connection answered its handshake while idle."""
        if self.status is WorkerStatus.UNKNOWN:
            self.status = WorkerStatus.OK
