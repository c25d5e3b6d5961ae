"""The control loop's clock: when the next tick is due, how late each tick started, the rate achieved.

Pure arithmetic on the times the loop passes in, so the pacing rules are tested with exact numbers: ticks are
scheduled at a fixed period from an anchor; a tick's lateness is measured against its schedule; when the loop has
fallen more than a period behind (a slow robot) it re-anchors instead of bursting ticks to catch up.
"""

from __future__ import annotations

MAX_SAMPLES = 5000


class LoopClock:
    def __init__(self, period: float) -> None:
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period}")
        self.period = period
        self.achieved_hz = 0.0
        self.lateness: list[float] = []  # seconds each tick started after its schedule
        self.work: list[float] = []  # seconds each tick spent working
        self._next = 0.0
        self._scheduled = 0.0
        self._last_start: float | None = None
        self._started = 0.0

    def idle(self, now: float) -> None:
        """No task: the next tick is due whenever one starts."""
        self._next = self._scheduled = now
        self._last_start = None

    def tick_started(self, now: float) -> None:
        self._note(self.lateness, max(0.0, now - self._scheduled))
        if self._last_start is not None and now > self._last_start:
            rate = 1.0 / (now - self._last_start)
            self.achieved_hz = rate if self.achieved_hz == 0 else 0.9 * self.achieved_hz + 0.1 * rate
        self._last_start = self._started = now

    def tick_done(self, now: float) -> float:
        """Seconds to wait before the next tick (0 when it is already due)."""
        self._note(self.work, now - self._started)
        self._next += self.period
        self._scheduled = self._next  # lateness is measured against this, before any re-anchoring
        if now - self._next > self.period:
            self._next = now  # far behind: re-anchor instead of bursting ticks
        return max(0.0, self._next - now)

    def p99_lateness_ms(self) -> float | None:
        recent = sorted(self.lateness[-500:])
        return round(1000 * recent[int(0.99 * (len(recent) - 1))], 2) if recent else None

    def reset_samples(self) -> None:
        self.lateness = []
        self.work = []

    @staticmethod
    def _note(samples: list[float], value: float) -> None:
        samples.append(value)
        if len(samples) > MAX_SAMPLES:
            del samples[: MAX_SAMPLES // 2]
