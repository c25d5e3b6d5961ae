"""Everything one robot's runtime tells the outside world, as typed calls onto the EventBus.

One method per event kind with the payload spelled out (agent/events.py EVENT_PAYLOADS), so the loop never builds
event dicts by hand and the API and the console can rely on the keys. Safety clamps can fire on every tick (an
untrained policy); `SafetyThrottle` folds repeats of a kind into one event per second with a count, while stops
(e-stop, watchdog, non-finite actions) always go through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agent.events import EventBus
from agent.types import SubtaskSource
from robots.types import SafetyEvent

logger = logging.getLogger(__name__)

ALWAYS_PUBLISHED_SAFETY = frozenset({"estop", "estop_reset", "watchdog", "nonfinite_action"})


@dataclass
class SafetyThrottle:
    """Per kind: publish at most one event per `interval_s`, reporting how many were folded in (pure)."""

    interval_s: float = 1.0
    _last: dict[str, tuple[float, int]] = field(default_factory=dict)

    def admit(self, kind: str, now: float) -> int | None:
        """None: drop this one. Otherwise publish it, noting the returned count of events folded since the last."""
        if kind in ALWAYS_PUBLISHED_SAFETY:
            return 0
        last, folded = self._last.get(kind, (float("-inf"), 0))
        if now - last < self.interval_s:
            self._last[kind] = (last, folded + 1)
            return None
        self._last[kind] = (now, 0)
        return folded


class RuntimeEvents:
    """Publishes one robot's events; `task_id` is whichever task is active when the event happens."""

    def __init__(self, bus: EventBus, robot_id: str) -> None:
        self.bus = bus
        self.robot_id = robot_id
        self.throttle = SafetyThrottle()
        self.last_error: str | None = None

    def task_state(self, task_id: str, state: str, previous: str | None, reason: str | None, text: str,
                   cause: str | None = None) -> None:
        self.bus.emit("task_state", self.robot_id, task_id, state=state, previous=previous, reason=reason, text=text,
                      cause=cause)

    def subtask(self, task_id: str, text: str, source: SubtaskSource, previous: str | None, tick: int) -> None:
        self.bus.emit("subtask", self.robot_id, task_id, text=text, source=source.value, previous=previous, tick=tick)

    def coaching(self, task_id: str, *, action: str, tick: int, utterance: str | None = None,
                 predicted: str | None = None, coached: str | None = None, relabel: str | None = None,
                 reason: str | None = None, hold_s: float | None = None) -> None:
        self.bus.emit("coaching", self.robot_id, task_id, utterance=utterance, predicted=predicted, coached=coached,
                      relabel=relabel, action=action, tick=tick, reason=reason, hold_s=hold_s)

    def worker(self, task_id: str | None, status: str, reason: str) -> None:
        self.bus.emit("worker", self.robot_id, task_id, status=status, reason=reason)

    def error(self, task_id: str | None, source: str, message: str) -> None:
        self.last_error = f"{source}: {message}"
        logger.warning("runtime error", extra={"robot_id": self.robot_id, "source": source, "error": message})
        self.bus.emit("error", self.robot_id, task_id, source=source, message=message)

    def safety(self, task_id: str | None, event: SafetyEvent, now: float) -> bool:
        """Publish a safety-layer event unless throttled; True when published."""
        folded = self.throttle.admit(event.kind, now)
        if folded is None:
            return False
        details = {k: v if isinstance(v, int | float | str | bool | None) else repr(v) for k, v in event.details.items()}
        if folded:
            details["similar_since_last"] = folded
        self.bus.emit("safety", self.robot_id, task_id, kind=event.kind, message=event.message, details=details)
        return True

    def episode(self, task_id: str, phase: str, episode_index: int | None, path: str | None = None,
                outcome: str | None = None, success: bool | None = None) -> None:
        self.bus.emit("episode", self.robot_id, task_id, phase=phase, episode_index=episode_index, path=path,
                      outcome=outcome, success=success)
