"""Everything one robot's runtime tells the outside world, as typed calls onto the EventBus.

One method per event kind with the payload spelled out (agent/events.py EVENT_PAYLOADS), so the loop never builds
event dicts by hand and the API and the console can rely on the keys. Safety clamps can fire on every tick (an
untrained policy); `SafetyThrottle` folds repeats of a kind into one event per second with a count, while stops
(e-stop, watchdog, non-finite actions) always go through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from agent.events import EventBus
from agent.system1 import ChunkArrived
from agent.types import SubtaskSource
from robots.types import Observation, SafetyEvent

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

    def task_state(
        self, task_id: str, state: str, previous: str | None, reason: str | None, text: str, cause: str | None = None
    ) -> None:
        self.bus.emit(
            "task_state", self.robot_id, task_id, state=state, previous=previous, reason=reason, text=text, cause=cause
        )

    def subtask(self, task_id: str, text: str, source: SubtaskSource, previous: str | None, tick: int) -> None:
        self.bus.emit("subtask", self.robot_id, task_id, text=text, source=source.value, previous=previous, tick=tick)

    def coaching(
        self,
        task_id: str,
        *,
        action: str,
        tick: int,
        utterance: str | None = None,
        predicted: str | None = None,
        coached: str | None = None,
        relabel: str | None = None,
        reason: str | None = None,
        hold_s: float | None = None,
    ) -> None:
        self.bus.emit(
            "coaching",
            self.robot_id,
            task_id,
            utterance=utterance,
            predicted=predicted,
            coached=coached,
            relabel=relabel,
            action=action,
            tick=tick,
            reason=reason,
            hold_s=hold_s,
        )

    def worker(self, task_id: str | None, status: str, reason: str) -> None:
        self.bus.emit("worker", self.robot_id, task_id, status=status, reason=reason)

    def error(self, task_id: str | None, source: str, message: str) -> None:
        self.last_error = f"{source}: {message}"
        logger.warning(
            "runtime error from %s: %s", source, message, extra={"robot_id": self.robot_id, "source": source}
        )
        self.bus.emit("error", self.robot_id, task_id, source=source, message=message)

    def safety(self, task_id: str | None, event: SafetyEvent, now: float) -> bool:
        """Publish a safety-layer event unless throttled; True when published."""
        folded = self.throttle.admit(event.kind, now)
        if folded is None:
            return False
        details = {
            k: v if isinstance(v, int | float | str | bool | None) else repr(v) for k, v in event.details.items()
        }
        if folded:
            details["similar_since_last"] = folded
        self.bus.emit("safety", self.robot_id, task_id, kind=event.kind, message=event.message, details=details)
        return True

    def chunk(
        self, task_id: str, reply: ChunkArrived, action_names: list[str], delay_ticks: int | None, with_actions: bool
    ) -> None:
        chunk, request = reply.chunk, reply.request
        self.bus.emit(
            "chunk",
            self.robot_id,
            task_id,
            chunk_id=reply.chunk_id,
            subtask=request.subtask,
            horizon=chunk.horizon,
            action_dim=chunk.action_dim,
            action_names=list(chunk.action_names or action_names),
            delay_ticks=delay_ticks,
            latency_ms=round(1000 * reply.latency_s, 1),
            request_tick=request.tick,
            rtc_delay=request.delay,
            timing={k: v for k, v in reply.timing.items() if isinstance(v, int | float)},
            actions=chunk.actions.tolist() if with_actions else None,
        )

    def state(
        self,
        task_id: str,
        tick: int,
        obs: Observation,
        state_names: list[str],
        action: np.ndarray | None,
        achieved_hz: float,
        empty_ticks: int,
        queue: int,
    ) -> None:
        self.bus.emit(
            "state",
            self.robot_id,
            task_id,
            tick=tick,
            state=obs.state.tolist(),
            state_names=list(obs.state_names or state_names),
            action=None if action is None else action.tolist(),
            control_hz=round(achieved_hz, 2),
            empty_ticks=empty_ticks,
            queue=queue,
        )

    def episode(
        self,
        task_id: str,
        phase: str,
        episode_index: int | None,
        path: str | None = None,
        outcome: str | None = None,
        success: bool | None = None,
    ) -> None:
        self.bus.emit(
            "episode",
            self.robot_id,
            task_id,
            phase=phase,
            episode_index=episode_index,
            path=path,
            outcome=outcome,
            success=success,
        )
