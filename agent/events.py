"""Events the orchestrator publishes (task state, subtasks, coaching, safety, chunks...) and the bus that fans them out.

The control loop publishes from a real-time thread, so `EventBus.publish` must never block: every subscriber
has its own bounded queue and a slow subscriber (a stalled WebSocket, a paused console) loses its *oldest*
events instead of slowing the robot down. Subscribers see how many events they lost (`Subscription.dropped`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

#: Every kind the orchestrator publishes. Payloads (`Event.data`) per kind are documented in `EVENT_PAYLOADS`.
EVENT_KINDS: frozenset[str] = frozenset(
    {"task_state", "subtask", "coaching", "safety", "chunk", "state", "worker", "error", "episode"}
)

#: The keys of `Event.data` for each kind (what the API and the console may rely on).
EVENT_PAYLOADS: dict[str, tuple[str, ...]] = {
    "task_state": ("state", "previous", "reason", "text", "cause"),  # cause: who paused/resumed (agent/pauses.py)
    "subtask": ("text", "source", "previous", "tick"),
    "coaching": ("utterance", "predicted", "coached", "relabel", "action", "tick", "reason", "hold_s"),
    "safety": ("kind", "message", "details"),
    "chunk": ("chunk_id", "subtask", "horizon", "action_dim", "action_names", "delay_ticks", "latency_ms",
              "request_tick", "rtc_delay", "timing", "actions"),
    "state": ("tick", "state", "state_names", "action", "control_hz", "empty_ticks", "queue"),
    "worker": ("status", "reason"),
    "error": ("source", "message"),
    "episode": ("phase", "episode_index", "path", "outcome", "success"),
}


class Event(BaseModel):
    """One thing that happened on one robot, timestamped (wall clock, seconds since the epoch)."""

    kind: str
    robot_id: str
    task_id: str | None = None
    ts: float = Field(default_factory=time.time)
    data: dict[str, Any] = Field(default_factory=dict)


class Subscription:
    """A bounded, drop-oldest queue of events for one consumer.

    `get(timeout)` returns the next event, or None when the timeout passes or the subscription is closed
    (check `closed` to tell the two apart). Iterating yields events until the subscription is closed.
    """

    def __init__(
        self,
        bus: EventBus,
        maxsize: int,
        kinds: Iterable[str] | None = None,
        robot_id: str | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"subscription maxsize must be >= 1, got {maxsize}")
        self._bus = bus
        self._queue: collections.deque[Event] = collections.deque(maxlen=maxsize)
        self._cond = threading.Condition()
        self._closed = False
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.robot_id = robot_id
        self.maxsize = maxsize
        self.dropped = 0

    def wants(self, event: Event) -> bool:
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        return self.robot_id is None or event.robot_id == self.robot_id

    def _offer(self, event: Event) -> None:
        with self._cond:
            if self._closed:
                return
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1  # deque(maxlen) evicts the oldest on append
            self._queue.append(event)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """Next event; None after `timeout` seconds without one, or once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._queue.popleft()

    def get_nowait(self) -> Event | None:
        with self._cond:
            return self._queue.popleft() if self._queue else None

    def drain(self) -> list[Event]:
        """Everything queued right now, oldest first."""
        with self._cond:
            items = list(self._queue)
            self._queue.clear()
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._bus._remove(self)

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.get(timeout=0.5)
            if event is not None:
                yield event
            elif self._closed:
                return

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Thread-safe fan-out of events to any number of subscriptions; publishing never blocks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def publish(self, event: Event) -> None:
        with self._lock:
            targets = list(self._subscriptions)
            self.published += 1
        for subscription in targets:
            if subscription.wants(event):
                subscription._offer(event)

    def emit(self, kind: str, robot_id: str, task_id: str | None = None, /, **data: Any) -> Event:
        """Build and publish an event in one call (what the orchestrator uses).

        The first three are positional-only so a payload may itself carry a `kind` (safety events do).
        """
        if kind not in EVENT_KINDS:
            logger.warning("publishing an event of unknown kind", extra={"kind": kind})
        event = Event(kind=kind, robot_id=robot_id, task_id=task_id, data=data)
        self.publish(event)
        return event

    def subscribe(
        self, maxsize: int = 256, kinds: Iterable[str] | None = None, robot_id: str | None = None
    ) -> Subscription:
        """A new subscription; optionally only some kinds and/or one robot. Close it when done."""
        subscription = Subscription(self, maxsize, kinds=kinds, robot_id=robot_id)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscriptions)
