"""Streaming action chunks to the robot with real-time chunking (RTC) bookkeeping.

Inference takes several control ticks, so waiting for a chunk to run out before asking for the next one
stalls the robot (openpi's synchronous broker; PI's RTC post). Instead the executor asks for the next chunk
*early*: as soon as the actions left in the current chunk are about to drop below the measured inference
delay (plus a margin), or after `execute_horizon` actions of it have run. The request carries the unexecuted
remainder of the current chunk and the expected delay d, so an RTC-capable worker can freeze the first d
actions (they will be executed from the old chunk anyway) and blend the rest.

Time is counted in control ticks, not seconds: a chunk requested with the observation of tick t has its
action i meant for tick t + i. When it arrives at tick t', actions before t' - t are in the past and are
skipped, so a late chunk never replays stale motion. The delay estimate is the max over the last few
measured delays (conservative, like the RTC paper's buffer Q), ignoring the first reply after a reset
because cold starts are not representative (LeRobot PR #4223).

`RtcExecutor` is single-threaded logic driven by the control loop; `BackgroundCaller` runs the blocking
worker calls on their own thread so the loop never waits for the network.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy.types import ActionChunk

logger = logging.getLogger(__name__)


@dataclass
class ChunkRequest:
    """What the executor wants from System 1: a chunk for `subtask`, starting at `tick`."""

    tick: int
    subtask: str
    prev_chunk: np.ndarray | None
    delay: int
    epoch: int
    version: int
    submitted_at: float = field(default_factory=time.monotonic)
    executed_before: int = 0  # executor.executed before the action of `tick` (to count what really ran since)


@dataclass
class ScheduledAction:
    """The action for one tick and where it came from (for the recorder and the events)."""

    action: np.ndarray
    chunk_id: int
    index: int


@dataclass
class _ActiveChunk:
    actions: np.ndarray
    chunk_id: int
    start_tick: int  # tick that action index 0 plays at (the request tick, later if the robot held meanwhile)
    swap_tick: int  # first tick an action of this chunk was executed
    request_tick: int  # tick whose observation the chunk was computed from (orders pipelined replies)
    version: int
    subtask: str


class DelayTracker:
    """Conservative inference-delay estimate in ticks: max of the last `size` measurements, warm-up excluded."""

    def __init__(self, size: int = 10, initial: int = 1) -> None:
        self._samples: collections.deque[int] = collections.deque(maxlen=size)
        self._initial = max(0, initial)
        self._skip_next = True

    def reset(self) -> None:
        """Forget nothing measured, but treat the next reply as a cold start again (reconnect, long pause)."""
        self._skip_next = True

    def add(self, delay_ticks: int) -> None:
        if self._skip_next:
            self._skip_next = False
            if self._samples:
                return
        self._samples.append(max(0, int(delay_ticks)))

    @property
    def estimate(self) -> int:
        return max(self._samples) if self._samples else self._initial

    @property
    def samples(self) -> list[int]:
        return list(self._samples)


class RtcExecutor:
    """Decides, tick by tick, which action to execute and when to ask System 1 for the next chunk.

    Call order inside one control tick t:
      1. `accept(result_chunk, request, t)` for every chunk that arrived since the last tick,
      2. `action_for(t)` -> the action to execute (None = nothing ready, hold still),
      3. `want_request(t)` -> if True, `build_request(t, subtask)` and send it (with tick t's observation).
    """

    def __init__(
        self,
        execute_horizon: int | None = None,
        margin_ticks: int = 3,
        delay_buffer: int = 10,
        initial_delay_ticks: int = 2,
        warmup_samples: int = 2,
        max_in_flight: int = 1,
        first_epoch: int = 0,
    ) -> None:
        if margin_ticks < 0:
            raise ValueError(f"margin_ticks must be >= 0, got {margin_ticks}")
        if execute_horizon is not None and execute_horizon < 1:
            raise ValueError(f"execute_horizon must be >= 1, got {execute_horizon}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.execute_horizon = execute_horizon
        self.warmup_samples = warmup_samples
        self.max_in_flight = max_in_flight
        self.margin_ticks = margin_ticks
        self.delays = DelayTracker(delay_buffer, initial_delay_ticks)
        self._active: _ActiveChunk | None = None
        self._in_flight: list[ChunkRequest] = []
        self.epoch = first_epoch  # bumped by reset(): replies from an older epoch are thrown away
        self.version = 0  # bumped when the subtask changes: the current chunk becomes stale
        self.empty_ticks = 0
        self.starved_ticks = 0  # empty ticks after motion had started (since the last reset): RTC failures
        self._moving = False
        self._last_action_tick = -1
        self.executed = 0
        self.chunks_used = 0
        self.chunks_discarded = 0
        self.last_delay_ticks: int | None = None

    # ------------------------------------------------------------------ state
    @property
    def in_flight(self) -> ChunkRequest | None:
        """The oldest request still waiting for its chunk (None when nothing is in flight)."""
        return self._in_flight[0] if self._in_flight else None

    @property
    def has_chunk(self) -> bool:
        return self._active is not None

    def remaining(self, tick: int) -> int:
        """Actions of the current chunk left for ticks >= tick."""
        if self._active is None:
            return 0
        return max(0, len(self._active.actions) - (tick - self._active.start_tick))

    # ------------------------------------------------------------------ control
    def reset(self) -> None:
        """Drop the current chunk and ignore anything still in flight (pause, e-stop, task change, reconnect)."""
        self._active = None
        self._in_flight = []
        self._moving = False
        self.epoch += 1
        self.delays.reset()

    def retarget(self) -> None:
        """The subtask changed: keep moving with what we have, but ask for a new chunk right away."""
        self.version += 1

    def request_failed(self, request: ChunkRequest) -> None:
        """The worker call for `request` raised: allow a new request (the caller decides whether to pause)."""
        if request in self._in_flight:
            self._in_flight.remove(request)

    def accept(self, chunk: ActionChunk | np.ndarray, request: ChunkRequest, tick: int, chunk_id: int = 0) -> bool:
        """A chunk for `request` arrived before tick `tick`. Returns True if it will be executed.

        `chunk_id` is the id the loop gave the chunk when it arrived (agent/system1.py); it is only carried here.
        """
        if request in self._in_flight:
            self._in_flight.remove(request)
        if request.epoch != self.epoch:
            self.chunks_discarded += 1
            return False
        actions = chunk.actions if isinstance(chunk, ActionChunk) else np.asarray(chunk, dtype=np.float32)
        delay = tick - request.tick
        self.last_delay_ticks = delay
        self.delays.add(delay)
        if self._active is not None and request.tick < self._active.request_tick:
            self.chunks_discarded += 1  # a newer chunk (pipelined request) is already executing
            return False
        # Skip the actions whose time has passed -- but only those the robot really executed meanwhile (from the
        # previous chunk). If it held still because nothing was ready, it continues from where it stopped
        # instead of jumping ahead along a plan it never followed (cf. LeRobot PR #4454).
        consumed = self.executed - request.executed_before
        skip = max(0, min(delay, consumed))
        if skip >= len(actions):
            logger.warning(
                "chunk arrived after its whole horizon had been executed; discarded",
                extra={"delay_ticks": delay, "horizon": len(actions)},
            )
            self.chunks_discarded += 1
            return False
        self._active = _ActiveChunk(
            actions=actions,
            chunk_id=chunk_id,
            start_tick=tick - skip,
            swap_tick=tick,
            request_tick=request.tick,
            version=request.version,
            subtask=request.subtask,
        )
        self.chunks_used += 1
        return True

    def action_for(self, tick: int) -> ScheduledAction | None:
        """The action to execute at `tick`, or None when nothing is ready (an empty tick: hold still)."""
        active = self._active
        if active is not None:
            index = tick - active.start_tick
            if 0 <= index < len(active.actions):
                self.executed += 1
                self._last_action_tick = tick
                self._moving = True
                return ScheduledAction(active.actions[index], active.chunk_id, index)
            if index >= len(active.actions):
                self._active = None
        self.empty_ticks += 1
        if self._moving:
            self.starved_ticks += 1
        return None

    def want_request(self, tick: int) -> bool:
        """Should a chunk request go out now, with the observation of `tick`?

        Requests are spaced so that each chunk arrives before the previous one runs out: the next one is due
        `H - d - margin` ticks after the newest request (in flight or executing). When the delay d exceeds
        about half a chunk that spacing is shorter than d, so up to `max_in_flight` requests overlap.
        """
        if len(self._in_flight) >= self.max_in_flight:
            return False
        active = self._active
        if active is None:
            return not self._in_flight
        if active.version != self.version:
            return not any(r.version == self.version for r in self._in_flight)
        horizon = len(active.actions)
        newest = max([active.start_tick, *(r.tick for r in self._in_flight)])
        if len(self.delays.samples) < self.warmup_samples:
            # the first continuations (RTC guidance, warm-up of the worker's backward pass) are often much
            # slower than the cold first chunk: chain requests back to back until real delays are measured
            return not self._in_flight
        spacing = horizon - self.delays.estimate - self.margin_ticks - 1
        if self.execute_horizon is not None:
            spacing = min(spacing, self.execute_horizon)
        return tick - newest >= max(1, spacing)

    def build_request(self, tick: int, subtask: str) -> ChunkRequest:
        """The request for a chunk starting at `tick` (the tick whose observation it carries).

        `prev_chunk` holds the current chunk's actions from `tick` on (what the robot will do while the
        worker thinks); `delay` is how many of them will certainly be executed before the reply is usable.
        """
        prev = None
        active = self._active
        if active is not None:
            index = tick - active.start_tick
            if 0 <= index < len(active.actions):
                prev = active.actions[index:].copy()
        delay = max(1, self.delays.estimate)
        if prev is not None:
            delay = min(delay, len(prev))
        else:
            delay = 0  # nothing to continue from: the worker samples a fresh chunk
        request = ChunkRequest(
            tick=tick,
            subtask=subtask,
            prev_chunk=prev,
            delay=delay,
            epoch=self.epoch,
            version=self.version,
            executed_before=self.executed - (1 if self._last_action_tick == tick else 0),
        )
        self._in_flight.append(request)
        return request


@dataclass
class CallResult:
    """Outcome of one background call."""

    tag: Any
    value: Any = None
    error: BaseException | None = None
    elapsed_s: float = 0.0


class BackgroundCaller:
    """One daemon thread that runs blocking calls (worker requests, System-2 queries) in order.

    Results are collected with `poll()` from the control thread, so the control loop never blocks on the
    network. At most `max_pending` calls wait; more are refused (the caller retries on a later tick).
    """

    def __init__(self, name: str, max_pending: int = 4, results: queue.Queue[CallResult] | None = None) -> None:
        self.name = name
        self._jobs: queue.Queue[tuple[Any, Callable[[], Any]] | None] = queue.Queue(maxsize=max_pending)
        # several callers may share one results queue, so one wait() covers all of them
        self._results: queue.Queue[CallResult] = results if results is not None else queue.Queue()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, tag: Any, fn: Callable[[], Any]) -> bool:
        try:
            self._jobs.put_nowait((tag, fn))
            return True
        except queue.Full:
            return False

    def poll(self) -> list[CallResult]:
        results = []
        while True:
            try:
                results.append(self._results.get_nowait())
            except queue.Empty:
                return results

    def wait(self, timeout: float) -> CallResult | None:
        """Block for the next result (used outside the control loop, e.g. by tests and benchmarks)."""
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def idle(self) -> bool:
        return self._jobs.empty() and not self._busy.is_set()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            tag, fn = job
            self._busy.set()
            started = time.monotonic()
            try:
                value = fn()
                result = CallResult(tag, value=value, elapsed_s=time.monotonic() - started)
            except BaseException as exc:  # reported to the control loop, which decides what to do
                result = CallResult(tag, error=exc, elapsed_s=time.monotonic() - started)
            self._results.put(result)
            self._busy.clear()

    def stop(self, timeout: float = 5.0) -> None:
        # drain pending jobs so the sentinel fits, then wait for the running call to finish
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        try:
            self._jobs.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
