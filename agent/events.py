"""Events the orchestrator publishes (task state, subtasks, coaching, safety, chunks...) and the bus that fans them out.

The control loop publishes from a real-time thread, so `EventBus.publish` must never block: every subscriber
has its own bounded queue and a slow subscriber (a stalled WebSocket, a paused console) loses its *oldest*
events instead of slowing the robot down. Subscribers see how many events they lost (`Subscription.dropped`).
Each kind's payload (`Event.data`) is a pydantic model here (`EVENT_PAYLOAD_MODELS`), exported in the API's OpenAPI
document: the live WebSocket, the stored task events and the webhooks carry exactly these keys.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.types import SubtaskSource, TaskState

logger = logging.getLogger(__name__)


class EventPayload(BaseModel):
    """`Event.data` of one kind: the keys the API and the console may rely on, and nothing else.

    Extra keys are refused so a key added by a publisher (agent/publisher.py) without being documented here fails
    the contract tests instead of reaching clients unannounced. The bus does not validate (publishing must stay
    cheap on the control thread); the tests validate what a running stack really sends.
    """

    model_config = ConfigDict(extra="forbid")


class TaskStatePayload(EventPayload):
    state: TaskState
    previous: TaskState | None = Field(description="None when the task was just created.")
    reason: str | None = Field(description="Why the task is in this state (the pause reason while paused).")
    text: str = Field(description="The task's text.")
    cause: str | None = Field(default=None, description="Who paused or resumed it (agent/pauses.py PauseCause).")


class SubtaskPayload(EventPayload):
    text: str = Field(description="The subtask now driving System 1, e.g. 'pick up the cup'.")
    source: SubtaskSource
    previous: str | None
    tick: int


class CoachingPayload(EventPayload):
    action: str = Field(description="'override' (a coach set the subtask) or 'released' (System 2 drives again).")
    tick: int
    utterance: str | None = None
    predicted: str | None = Field(default=None, description="What System 2 had predicted when the coach spoke.")
    coached: str | None = None
    relabel: str | None = Field(default=None, description="'Policy: … → Relabeled: …' as recorded in the episode.")
    reason: str | None = None
    hold_s: float | None = Field(default=None, description="How long the coached subtask holds (None: until released).")


class SafetyPayload(EventPayload):
    kind: str = Field(description="The safety layer's event kind, e.g. 'estop', 'estop_reset', 'watchdog'.")
    message: str
    details: dict[str, int | float | str | bool | None] = Field(
        description="Scalars only; 'similar_since_last' counts events of this kind folded into this one."
    )


class ChunkPayload(EventPayload):
    chunk_id: int
    subtask: str | None
    horizon: int
    action_dim: int
    action_names: list[str]
    delay_ticks: int | None
    latency_ms: float
    request_tick: int
    rtc_delay: int
    timing: dict[str, float] = Field(description="Numeric timings reported by the policy worker, in ms.")
    actions: list[list[float]] | None = Field(description="horizon x action_dim, when the deployment streams them.")


class StatePayload(EventPayload):
    tick: int
    state: list[float]
    state_names: list[str]
    action: list[float] | None = Field(description="The action executed on this tick (None: the robot held still).")
    control_hz: float = Field(description="Achieved control rate.")
    empty_ticks: int
    queue: int = Field(description="Actions left in the executor's queue.")


class WorkerPayload(EventPayload):
    status: str = Field(description="'late', 'lost' or 'restored' (agent/worker_health.py).")
    reason: str | None


class ErrorPayload(EventPayload):
    source: str = Field(description="Which part failed: 'robot', 'worker', 'system2', 'recorder', ...")
    message: str


class EpisodePayload(EventPayload):
    phase: str = Field(description="'started' or 'finished'.")
    episode_index: int | None
    path: str | None = None
    outcome: str | None = None
    success: bool | None = None


#: The payload model of every kind the orchestrator publishes (`Event.data`).
EVENT_PAYLOAD_MODELS: dict[str, type[EventPayload]] = {
    "task_state": TaskStatePayload,
    "subtask": SubtaskPayload,
    "coaching": CoachingPayload,
    "safety": SafetyPayload,
    "chunk": ChunkPayload,
    "state": StatePayload,
    "worker": WorkerPayload,
    "error": ErrorPayload,
    "episode": EpisodePayload,
}

#: Every kind the orchestrator publishes.
EVENT_KINDS: frozenset[str] = frozenset(EVENT_PAYLOAD_MODELS)

#: The keys of `Event.data` for each kind, read off the payload models.
EVENT_PAYLOADS: dict[str, tuple[str, ...]] = {kind: tuple(m.model_fields) for kind, m in EVENT_PAYLOAD_MODELS.items()}


def validate_payload(kind: str, data: dict[str, Any]) -> EventPayload:
    """`data` checked against its kind's model (KeyError for an unknown kind, ValidationError for a bad payload)."""
    return EVENT_PAYLOAD_MODELS[kind].model_validate(data)


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
