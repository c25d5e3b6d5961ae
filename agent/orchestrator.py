"""The long-horizon loop for one robot: task queue, System 2 → subtask, System 1 → chunks, executor → robot.

One `RobotRuntime` owns one robot and runs one control thread. Each tick it observes, collects whatever the
background callers brought back (chunks from the policy worker, subtasks from System 2), executes the action
the RTC executor scheduled for this tick (or holds still when there is none), records the frame, and asks
for the next chunk early. Nothing on the control thread waits for the network.

Operator commands (pause, resume, abort, coach, change task) are queued to the control thread and applied at
the start of the next tick, so a coach's utterance becomes the subtask the low level receives within one
tick and no command races the loop. E-stop is the exception: it latches on the safety layer immediately,
from the caller's thread, and the task bookkeeping follows on the next tick.

Faults: if the worker is gone (PolicyUnavailable) or late beyond `worker_late_s`, the robot holds still, the
task pauses with the reason, the worker is probed, and the task resumes by itself when the worker answers.
A worker whose metadata frame does not fit the robot (agent/compat.py: another interface version, other action
names, ...) is reported as an error event at start-up, and every chunk is checked before it is used: the task
fails with that message and the robot never executes the chunk.
Pause causes stack (operator, worker, System 2, waiting for a coach): the task runs only when none is left.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from agent.coaching import CoachingState, interpret, relabel_text
from agent.compat import PolicyMismatchError, check_policy_fits_robot
from agent.config import StrictModel
from agent.events import EventBus
from agent.executor import BackgroundCaller, ChunkRequest, RtcExecutor
from agent.system2 import DONE, System2Backend
from agent.task_queue import TaskQueue, TaskRecord, UnknownTask
from agent.types import SubtaskSource, TaskState
from policy.types import ActionChunk
from robots.types import Observation, SafetyEvent

logger = logging.getLogger(__name__)

__all__ = ["OrchestratorConfig", "RobotRuntime", "RuntimeCommandError", "TaskRecord", "UnknownTask"]

OUTCOMES = {
    TaskState.SUCCEEDED: "succeeded",
    TaskState.FAILED: "failed",
    TaskState.ABORTED: "aborted",
    TaskState.STOPPED_BY_ESTOP: "stopped-by-e-stop",
    TaskState.INTERRUPTED: "interrupted",
}

ALWAYS_PUBLISHED_SAFETY = frozenset({"estop", "estop_reset", "watchdog", "nonfinite_action"})
SAFETY_EVENT_INTERVAL_S = 1.0

# pause causes, in the order their reasons are shown
CAUSE_OPERATOR, CAUSE_WORKER, CAUSE_SYSTEM2, CAUSE_COACH = "operator", "worker", "system2", "coach"


class OrchestratorConfig(StrictModel):
    """Knobs of the loop. Defaults suit the simulated kitchen at 20 Hz with 50-step chunks."""

    control_hz: float | None = Field(default=None, gt=0, description="None = the robot's describe().control_hz")
    every_k_chunks: int = Field(default=4, ge=1, description="re-ask System 2 after this many chunks")
    execute_horizon: int | None = Field(default=None, ge=1, description="ask for a new chunk after this many actions")
    rtc_margin_ticks: int = Field(default=3, ge=0)
    max_in_flight: int = Field(
        default=2, ge=1, le=4, description="chunk requests that may overlap (each on its own worker connection)"
    )
    late_grace_fraction: float = Field(
        default=0.6, ge=0, le=0.9, description="part of a tick to wait for an imminent chunk before holding"
    )
    delay_buffer: int = Field(default=10, ge=1)
    worker_late_s: float = Field(default=2.0, gt=0, description="pause when a chunk is this late and none is ready")
    worker_probe_s: float = Field(default=0.5, gt=0)
    system2_retry_s: float = Field(default=2.0, gt=0)
    coach_release_chunks: int = Field(default=6, ge=1)
    max_task_s: float | None = Field(default=600.0, gt=0, description="time limit per task (None = none)")
    success_check_every: int = Field(default=10, ge=1, description="ticks between robot.task_success() checks")
    reset_robot_on_task: bool = True
    seed: int | None = None
    state_event_every: int = Field(default=5, ge=1)
    publish_chunk_actions: bool = True
    idle_observe_hz: float = Field(default=1.0, ge=0, description="observation rate while idle (live view)")
    command_timeout_s: float = Field(default=10.0, gt=0)


class RuntimeCommandError(RuntimeError):
    """A runtime command could not be applied (e.g. coaching a task that is not running)."""


def _clone_policy(policy: Any) -> Any | None:
    """Another connection to the same worker, for overlapping requests; None when the client cannot be cloned."""
    clone = getattr(policy, "clone", None)
    if callable(clone):
        return clone()
    from policy.client import PolicyClient

    if type(policy) is PolicyClient:
        return PolicyClient(policy.url, api_key=policy.api_key, timeout_s=policy.timeout_s,
                            episode_id=policy.episode_id)
    return None


def _check_fits(policy: Any, description: Any, source: str) -> None:
    """PolicyMismatchError unless the policy's metadata (a worker's metadata frame) fits the robot; a policy without
    metadata is not checked here (the chunk's action count still is). On a caller thread: reading a client's
    metadata may connect."""
    metadata = getattr(policy, "metadata", None)
    if isinstance(metadata, Mapping):
        check_policy_fits_robot(metadata, description, source)


def _is_unavailable(exc: BaseException) -> bool:
    from policy.client import PolicyUnavailable

    return isinstance(exc, PolicyUnavailable | ConnectionError | TimeoutError)


@dataclass
class _Active:
    """Bookkeeping of the running (or paused) task, owned by the control thread."""

    record_id: str
    text: str
    started_mono: float
    subtask: str | None = None
    subtask_source: SubtaskSource | None = None
    policy_subtask: str | None = None  # System 2's latest opinion, even while coached
    success_check: bool = True
    last_progress: float | None = None
    chunks_since_s2: int = 0
    s2_in_flight: bool = False
    s2_next_try: float = 0.0
    s2_requested_tick: int = -1
    epoch: int = 0


class RobotRuntime:
    """One robot's task queue and control loop (see module docstring). Thread-safe public methods."""

    def __init__(
        self,
        robot_id: str,
        robot: Any,
        policy: Any,
        system2: System2Backend,
        recorder: Any | None,
        bus: EventBus,
        config: OrchestratorConfig | None = None,
    ) -> None:
        from robots.safety import SafeRobot

        self.robot_id = robot_id
        self.config = config or OrchestratorConfig()
        self._safety_rate: dict[str, tuple[float, int]] = {}
        if isinstance(robot, SafeRobot):
            self.robot = robot
            if robot.on_event is None:
                robot.on_event = self._on_safety_event
        else:
            self.robot = SafeRobot(robot, on_event=self._on_safety_event)
        # the safety layer reports its own e-stops; publish ours only when its events do not reach the bus
        self._safety_wired = self.robot.on_event == self._on_safety_event
        self.policy = policy
        self.system2 = system2
        self.recorder = recorder
        self.bus = bus
        self.description = self.robot.describe()
        url = getattr(policy, "url", None)
        self._policy_source = f"policy worker {url}" if url else "the policy"
        self.control_hz = float(self.config.control_hz or self.description.control_hz)
        self.period = 1.0 / self.control_hz
        self.queue = TaskQueue(robot_id, on_transition=self._on_transition)
        self.coaching = CoachingState(self.config.coach_release_chunks)
        self._commands: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        # one caller (and one worker connection) per request that may be in flight at once: a connection
        # serves one request at a time, and overlapping requests are what keeps delays > H/2 from stalling
        self._s1_results: queue.Queue = queue.Queue()
        self._s1_policies = [policy]
        self._owned_clients: list[Any] = []
        for _ in range(self.config.max_in_flight - 1):
            clone = _clone_policy(policy)
            if clone is None:
                break
            self._s1_policies.append(clone)
            self._owned_clients.append(clone)
        self._s1 = [
            BackgroundCaller(f"{robot_id}-system1-{i}", max_pending=1, results=self._s1_results)
            for i in range(len(self._s1_policies))
        ]
        self._s2 = BackgroundCaller(f"{robot_id}-system2", max_pending=2)
        self.executor = self._new_executor()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._active: _Active | None = None
        self._causes: dict[str, str] = {}
        self._tick = 0
        self._epoch = 0
        self._chunk_seq = 0
        self._latest_obs: Observation | None = None
        self._latest_chunk: ActionChunk | None = None
        self._last_action: np.ndarray | None = None
        self._worker_status = "unknown"
        self._probe_in_flight = False
        self._next_probe = 0.0
        self._last_error: str | None = None
        self._achieved_hz = 0.0
        self._last_tick_start: float | None = None
        self._lateness: list[float] = []
        self._tick_work: list[float] = []
        self._pending_estop: str | None = None
        self._closed = False

    def _new_executor(self) -> RtcExecutor:
        return RtcExecutor(
            execute_horizon=self.config.execute_horizon,
            margin_ticks=self.config.rtc_margin_ticks,
            delay_buffer=self.config.delay_buffer,
            max_in_flight=len(self._s1_policies),
        )

    # ================================================================== public API (any thread)
    def start(self) -> None:
        """Start the control thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{self.robot_id}-control", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop: the active task and queued ones end as INTERRUPTED, the robot holds still."""
        if self._thread is not None and self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout)
        if self._active is not None:
            self._finish(TaskState.INTERRUPTED, "runtime stopped")
        for record in self.queue.all():
            if record.state is TaskState.QUEUED:
                self.queue.transition(record.id, TaskState.INTERRUPTED, "runtime stopped")
        for caller in self._s1:
            caller.stop(timeout=2.0)
        self._s2.stop(timeout=2.0)
        for client in self._owned_clients:
            try:
                client.close()
            except Exception as exc:
                logger.debug("closing an extra policy connection failed: %s", exc)
        self._owned_clients = []

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, text: str, task_id: str | None = None) -> TaskRecord:
        """Queue a task; it starts when the robot is free (and not e-stopped)."""
        record = self.queue.add(text, task_id)
        self._notify()
        return record

    def pause(self, task_id: str) -> TaskRecord:
        return self._command(lambda: self._do_pause(task_id))

    def resume(self, task_id: str) -> TaskRecord:
        return self._command(lambda: self._do_resume(task_id))

    def abort(self, task_id: str) -> TaskRecord:
        record = self.queue.get(task_id)
        if record.state is TaskState.QUEUED:
            return self.queue.transition(task_id, TaskState.ABORTED, "aborted by operator while queued")
        return self._command(lambda: self._do_abort(task_id))

    def change_task(self, task_id: str, text: str) -> TaskRecord:
        return self._command(lambda: self._do_change_task(task_id, text))

    def coach(self, task_id: str, utterance: str) -> dict[str, Any]:
        """Apply a coach's utterance at the next tick. Returns what happened (kind, subtask, relabel, tick)."""
        return self._command(lambda: self._do_coach(task_id, utterance))

    def complete(self, task_id: str, success: bool, reason: str = "operator judged the outcome") -> TaskRecord:
        """The operator ends the active task with an outcome (robots without a success check)."""
        return self._command(lambda: self._do_complete(task_id, success, reason))

    def estop(self, reason: str = "operator") -> None:
        """Latch the e-stop on the safety layer now; the active task ends as STOPPED_BY_ESTOP."""
        self.robot.estop(reason)
        if not self._safety_wired:
            self.bus.emit("safety", self.robot_id, self._active_id(), kind="estop", message=reason, details={})
        self._pending_estop = reason
        self._command(self._do_estop_bookkeeping, wait=False)

    def reset_estop(self) -> None:
        """Release the latch; queued tasks may start again."""
        self._command(self._do_reset_estop)

    def status(self) -> dict[str, Any]:
        active = self._active
        record = self.queue.get(active.record_id) if active else None
        lateness = sorted(self._lateness[-500:])
        return {
            "robot_id": self.robot_id,
            "running": self.running,
            "estopped": bool(self.robot.estopped),
            "tick": self._tick,
            "control_hz": self.control_hz,
            "achieved_hz": round(self._achieved_hz, 2),
            "p99_lateness_ms": round(1000 * lateness[int(0.99 * (len(lateness) - 1))], 2) if lateness else None,
            "task_id": record.id if record else None,
            "task_text": record.text if record else None,
            "task_state": record.state.value if record else None,
            "reason": record.reason if record else None,
            "pause_causes": dict(self._causes),
            "subtask": active.subtask if active else None,
            "subtask_source": active.subtask_source.value if active and active.subtask_source else None,
            "policy_subtask": active.policy_subtask if active else None,
            "coached": self.coaching.active is not None,
            "worker": self._worker_status,
            "queued": self.queue.queued_count(),
            "empty_ticks": self.executor.empty_ticks,
            "starved_ticks": self.executor.starved_ticks,
            "executed_actions": self.executor.executed,
            "chunks": self.executor.chunks_used,
            "delay_estimate_ticks": self.executor.delays.estimate,
            "last_delay_ticks": self.executor.last_delay_ticks,
            "last_error": self._last_error,
        }

    def lateness_samples(self) -> list[float]:
        """Seconds each recent control tick started after its schedule (for benchmarks and the console)."""
        return list(self._lateness)

    def tick_work_samples(self) -> list[float]:
        """Seconds each recent control tick spent working (observe, act, record, bookkeeping)."""
        return list(self._tick_work)

    def reset_timing(self) -> None:
        self._lateness = []
        self._tick_work = []

    def tasks(self) -> list[TaskRecord]:
        return self.queue.all()

    def task(self, task_id: str) -> TaskRecord:
        return self.queue.get(task_id)

    def latest_observation(self) -> Observation | None:
        return self._latest_obs

    def latest_chunk(self) -> ActionChunk | None:
        return self._latest_chunk

    def wait(self, task_id: str, timeout: float, states: set[TaskState] | None = None) -> TaskRecord:
        """Block until the task reaches one of `states` (default: any terminal state); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                record = self.queue.get(task_id)
                if (record.state in states) if states else record.state.terminal:
                    return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"task {task_id} still {record.state.value} after {timeout}s")
                self._changed.wait(min(remaining, 0.5))

    # ================================================================== command plumbing
    def _command(self, fn: Callable[[], Any], wait: bool = True) -> Any:
        """Run `fn` on the control thread (or inline when the loop is not running) and return its result."""
        if not self.running or threading.current_thread() is self._thread:
            return fn()
        future: Future = Future()
        self._commands.put((fn, future))
        self._notify()
        if not wait:
            return None
        try:
            return future.result(timeout=self.config.command_timeout_s)
        except FutureTimeout:
            raise RuntimeCommandError(f"robot {self.robot_id}: control loop did not apply the command in time") from None

    def _run_commands(self) -> None:
        while True:
            try:
                fn, future = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(fn())
            except BaseException as exc:  # delivered to the caller's thread
                future.set_exception(exc)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _active_id(self) -> str | None:
        return self._active.record_id if self._active else None

    def _require_active(self, task_id: str) -> _Active:
        self.queue.get(task_id)  # UnknownTask for a bad id
        if self._active is None or self._active.record_id != task_id:
            state = self.queue.get(task_id).state.value
            raise RuntimeCommandError(f"task {task_id} is not the active task on robot {self.robot_id} (it is {state})")
        return self._active

    # ================================================================== events
    def _on_transition(self, record: TaskRecord, previous: TaskState | None) -> None:
        self.bus.emit(
            "task_state", self.robot_id, record.id, state=record.state.value,
            previous=previous.value if previous else None, reason=record.reason, text=record.text,
        )
        self._notify()

    def _on_safety_event(self, event: SafetyEvent) -> None:
        # clamps and limits can fire on every tick (an untrained policy): publish each kind at most once per
        # second with a count of what was folded in, so they cannot flood the bus; stops always go through
        if event.kind not in ALWAYS_PUBLISHED_SAFETY:
            now = time.monotonic()
            last, folded = self._safety_rate.get(event.kind, (0.0, 0))
            if now - last < SAFETY_EVENT_INTERVAL_S:
                self._safety_rate[event.kind] = (last, folded + 1)
                return
            self._safety_rate[event.kind] = (now, 0)
            if folded:
                event = event.model_copy(update={"details": {**event.details, "similar_since_last": folded}})
        self.bus.emit(
            "safety", self.robot_id, self._active_id(), kind=event.kind, message=event.message,
            details={k: v if isinstance(v, int | float | str | bool | None) else repr(v) for k, v in event.details.items()},
        )
        if self._active is not None and event.kind in ("estop", "watchdog"):
            self._record("event", event.kind, event.message)

    def _error(self, source: str, message: str) -> None:
        self._last_error = f"{source}: {message}"
        logger.warning("runtime error", extra={"robot_id": self.robot_id, "source": source, "error": message})
        self.bus.emit("error", self.robot_id, self._active_id(), source=source, message=message)

    def _record(self, method: str, *args: Any) -> Any:
        """Call the recorder; a recorder failure is reported, never allowed to stop the robot loop."""
        if self.recorder is None:
            return None
        try:
            return getattr(self.recorder, method)(*args)
        except Exception as exc:
            self._error("recorder", f"{method} failed: {exc}")
            return None

    # ================================================================== control thread
    def _warm_up(self) -> None:
        """Pay one-time costs before any task's clock runs: the first render (a GL context for this thread)
        and the worker connections (handshake + metadata). A worker that is down now is not an error yet."""
        try:
            self._latest_obs = self.robot.observe()
        except Exception as exc:
            self._error("robot", f"first observation failed: {exc}")
        for caller, policy in zip(self._s1, self._s1_policies, strict=True):
            if hasattr(type(policy), "metadata"):  # the class: reading the property would connect (and raise)
                caller.submit(("warmup", -1), lambda p=policy: _check_fits(p, self.description, self._policy_source))

    def _loop(self) -> None:
        self._warm_up()
        next_deadline = scheduled = time.monotonic()
        idle_next_obs = time.monotonic() + (1.0 / self.config.idle_observe_hz if self.config.idle_observe_hz else 0)
        while not self._stop.is_set():
            self._run_commands()
            if self._active is None and not self._start_next():
                now = time.monotonic()
                # warm-up answers arrive while idle: a worker that does not fit the robot is reported right away
                self._collect_system1(self._tick, now, self._poll_s1())
                if self.config.idle_observe_hz > 0 and now >= idle_next_obs:
                    idle_next_obs = now + 1.0 / self.config.idle_observe_hz
                    try:
                        self._latest_obs = self.robot.observe()
                    except Exception as exc:
                        self._error("robot", f"observe failed while idle: {exc}")
                with self._changed:
                    self._changed.wait(0.05)
                next_deadline = scheduled = time.monotonic()
                self._last_tick_start = None
                continue
            started = time.monotonic()
            self._note_timing(self._lateness, max(0.0, started - scheduled))
            if self._last_tick_start is not None:
                dt = started - self._last_tick_start
                if dt > 0:
                    rate = 1.0 / dt
                    self._achieved_hz = rate if self._achieved_hz == 0 else 0.9 * self._achieved_hz + 0.1 * rate
            self._last_tick_start = started
            try:
                self._control_tick()
            except Exception as exc:
                logger.exception("control tick failed")
                self._error("orchestrator", f"control tick failed: {type(exc).__name__}: {exc}")
                if self._active is not None:
                    self._finish(TaskState.FAILED, f"internal error: {type(exc).__name__}: {exc}")
            self._tick += 1
            now = time.monotonic()
            self._note_timing(self._tick_work, now - started)
            next_deadline += self.period
            scheduled = next_deadline  # lateness is measured against this, before any re-anchoring
            if now - next_deadline > self.period:
                next_deadline = now  # far behind (slow robot): re-anchor instead of bursting ticks
            delay = next_deadline - now
            if delay > 0:
                self._stop.wait(delay)

    @staticmethod
    def _note_timing(samples: list[float], value: float) -> None:
        samples.append(value)
        if len(samples) > 5000:
            del samples[:2500]

    def _start_next(self) -> bool:
        if self.robot.estopped or self._pending_estop:
            return False
        record = self.queue.next_queued()
        if record is None:
            return False
        self._begin(record)
        return True

    def _begin(self, record: TaskRecord) -> None:
        self._epoch += 1
        active = _Active(record_id=record.id, text=record.text, started_mono=time.monotonic(), epoch=self._epoch)
        self._active = active
        self._causes = {}
        self.executor = self._new_executor()
        self.coaching.release()
        self.queue.transition(record.id, TaskState.RUNNING, None)
        try:
            self.robot.set_task(record.text)
        except ValueError as exc:
            active.success_check = False
            self._error("robot", f"robot has no success check for this task: {exc}")
        except Exception as exc:
            active.success_check = False
            self._error("robot", f"set_task failed: {exc}")
        if self.config.reset_robot_on_task:
            self._latest_obs = self.robot.reset(self.config.seed)
        episode_index = self._record("start", record.text)
        self.queue.update(record.id, episode_index=episode_index)
        self.bus.emit("episode", self.robot_id, record.id, phase="started", episode_index=episode_index, path=None,
                      outcome=None, success=None)
        progress = self._safe_progress()
        active.last_progress = progress
        if not getattr(self.system2, "autonomous", True):
            self._set_cause(CAUSE_COACH, "waiting for a coach to give the first subtask")

    # ------------------------------------------------------------------ one tick
    def _control_tick(self) -> None:
        active = self._active
        if active is None:
            return
        tick = self._tick
        tick_started = time.monotonic()
        obs = self.robot.observe()
        self._latest_obs = obs
        now = time.monotonic()

        results = self._poll_s1()
        if not results and not self._causes and self.executor.in_flight is not None and self.executor.remaining(tick) == 0:
            # nothing left to execute but a chunk is on its way: wait a little inside this tick rather than
            # hold for a whole one (a reply that lands just after the tick started would otherwise be missed)
            grace = self.config.late_grace_fraction * self.period - (time.monotonic() - tick_started)
            if grace > 0:
                with contextlib.suppress(queue.Empty):
                    results = [self._s1_results.get(timeout=grace), *self._poll_s1()]
        self._collect_system1(tick, now, results)
        if self._active is None:
            return
        self._collect_system2(tick, obs)
        if self._active is None:
            return

        running = not self._causes
        scheduled = self.executor.action_for(tick) if running else None
        # ask for the next chunk before acting: every millisecond the request leaves earlier is slack for RTC
        if running and active.subtask and self._worker_status != "lost" and self.executor.want_request(tick):
            self._request_chunk(tick, obs, active.subtask)
        if scheduled is not None:
            self.robot.act(scheduled.action)
            self._last_action = scheduled.action
            self._record("record", obs, scheduled.action, scheduled.chunk_id, scheduled.index)
        else:
            self.robot.hold()

        self._watch_worker(now)
        self._schedule_system2(tick, obs, now)
        self._check_end(tick, now)
        if tick % self.config.state_event_every == 0:
            self.bus.emit(
                "state", self.robot_id, self._active_id(), tick=tick, state=obs.state.tolist(),
                state_names=list(obs.state_names or self.description.state_names),
                action=None if scheduled is None else scheduled.action.tolist(),
                control_hz=round(self._achieved_hz, 2), empty_ticks=self.executor.empty_ticks,
                queue=self.executor.remaining(tick + 1),
            )

    # ------------------------------------------------------------------ System 1
    def _poll_s1(self) -> list:
        results = []
        while True:
            try:
                results.append(self._s1_results.get_nowait())
            except queue.Empty:
                return results

    def _idle_s1(self) -> int | None:
        for index, caller in enumerate(self._s1):
            if caller.idle:
                return index
        return None

    def _request_chunk(self, tick: int, obs: Observation, subtask: str) -> None:
        index = self._idle_s1()
        if index is None:
            return
        policy = self._s1_policies[index]
        request = self.executor.build_request(tick, obs, subtask)
        prev, delay = request.prev_chunk, request.delay
        description, source = self.description, self._policy_source

        def act() -> Any:
            result = policy.act(obs, subtask, prev_chunk=prev, delay=delay)
            _check_fits(policy, description, source)  # after the call: the metadata of the connection that answered
            return result

        if not self._s1[index].submit(("act", self._epoch, request), act):
            self.executor.request_failed(request)

    def _collect_system1(self, tick: int, now: float, results: list) -> None:
        for result in results:
            kind, epoch = result.tag[0], result.tag[1]
            if kind == "warmup":
                if isinstance(result.error, PolicyMismatchError):
                    if self._last_error != f"worker: {result.error}":  # one report, not one per connection
                        self._error("worker", str(result.error))
                elif result.error is None and self._worker_status == "unknown":
                    self._worker_status = "ok"
                continue
            if kind == "probe":
                self._probe_in_flight = False
                if result.error is None and result.value and self._worker_status == "lost":
                    self._worker_back("policy worker is reachable again")
                continue
            request: ChunkRequest = result.tag[2]
            if epoch != self._epoch or self._active is None:
                continue
            if result.error is not None:
                self.executor.request_failed(request)
                if _is_unavailable(result.error):
                    self._worker_lost(f"policy worker unavailable: {result.error}")
                elif isinstance(result.error, PolicyMismatchError):
                    self._error("worker", str(result.error))
                    self._finish(TaskState.FAILED, str(result.error))
                else:
                    self._error("worker", str(result.error))
                    self._finish(TaskState.FAILED, f"policy worker error: {result.error}")
                continue
            chunk, timing = result.value if isinstance(result.value, tuple) else (result.value, {})
            expected_dim = len(self.description.actions)
            if chunk.action_dim != expected_dim:
                message = (f"policy worker returned {chunk.action_dim}-D actions but robot {self.robot_id} takes "
                           f"{expected_dim} ({', '.join(self.description.action_names)}); wrong checkpoint?")
                self._error("worker", message)
                self._finish(TaskState.FAILED, message)
                continue
            if self._worker_status in ("lost", "late", "unknown"):
                self._worker_back("policy worker answered")
            self._chunk_seq += 1
            chunk_id = self._chunk_seq
            if CAUSE_WORKER in self._causes or CAUSE_OPERATOR in self._causes:
                self.executor.request_failed(request)
                continue
            used = self.executor.accept(chunk, request, tick, chunk_id=chunk_id)
            if not used:
                logger.info("chunk not used", extra={"robot_id": self.robot_id, "request_tick": request.tick,
                                                     "tick": tick, "latency_s": round(result.elapsed_s, 3)})
                continue
            self._latest_chunk = chunk.model_copy(update={"chunk_id": chunk_id, "subtask": request.subtask})
            active = self._active
            active.chunks_since_s2 += 1
            release = self.coaching.on_chunk() if request.subtask == active.subtask else None
            self.bus.emit(
                "chunk", self.robot_id, active.record_id, chunk_id=chunk_id, subtask=request.subtask,
                horizon=chunk.horizon, action_dim=chunk.action_dim,
                action_names=list(chunk.action_names or self.description.action_names),
                delay_ticks=self.executor.last_delay_ticks, latency_ms=round(1000 * result.elapsed_s, 1),
                request_tick=request.tick, rtc_delay=request.delay,
                timing={k: v for k, v in dict(timing or {}).items() if isinstance(v, int | float)},
                actions=chunk.actions.tolist() if self.config.publish_chunk_actions else None,
            )
            if release:
                self._release_coaching(release)

    def _worker_lost(self, reason: str) -> None:
        if self._worker_status != "lost":
            self._worker_status = "lost"
            self.bus.emit("worker", self.robot_id, self._active_id(), status="lost", reason=reason)
            self._record("event", "pause", reason)
        self.executor.reset()
        self._set_cause(CAUSE_WORKER, reason)
        self._next_probe = time.monotonic() + self.config.worker_probe_s

    def _worker_back(self, reason: str) -> None:
        previous = self._worker_status
        self._worker_status = "ok"
        if previous in ("lost", "late"):
            self.bus.emit("worker", self.robot_id, self._active_id(), status="restored", reason=reason)
            if self._active is not None and CAUSE_WORKER in self._causes:
                self._record("event", "resume", reason)
        if CAUSE_WORKER in self._causes:
            # a merely late worker's chunk is still useful: the executor continues from where the robot
            # stopped; after a lost connection everything in flight is gone, so start fresh
            self._clear_cause(CAUSE_WORKER, reset=previous != "late")

    def _watch_worker(self, now: float) -> None:
        in_flight = self.executor.in_flight
        if (
            in_flight is not None
            and not self.executor.has_chunk
            and self._worker_status != "lost"
            and now - in_flight.submitted_at > self.config.worker_late_s
            and CAUSE_WORKER not in self._causes
        ):
            reason = f"policy worker late: no chunk for {now - in_flight.submitted_at:.1f}s"
            self._worker_status = "late"
            self.bus.emit("worker", self.robot_id, self._active_id(), status="late", reason=reason)
            self._record("event", "pause", reason)
            self._set_cause(CAUSE_WORKER, reason)
        if self._worker_status == "lost" and not self._probe_in_flight and now >= self._next_probe:
            self._next_probe = now + self.config.worker_probe_s
            index = self._idle_s1()
            if index is not None:
                self._probe_in_flight = self._s1[index].submit(("probe", self._epoch), self.policy.healthy)

    # ------------------------------------------------------------------ System 2
    def _schedule_system2(self, tick: int, obs: Observation, now: float) -> None:
        active = self._active
        if active is None or active.s2_in_flight or not getattr(self.system2, "autonomous", True):
            return
        if CAUSE_WORKER in self._causes or CAUSE_OPERATOR in self._causes:
            return  # nothing moves; ask again once the robot runs
        due = (
            active.subtask is None
            or active.chunks_since_s2 >= self.config.every_k_chunks
            or active.s2_requested_tick < 0
        )
        if not due or now < active.s2_next_try:
            return
        self._ask_system2(tick, obs)

    def _ask_system2(self, tick: int, obs: Observation) -> None:
        active = self._active
        if active is None or active.s2_in_flight or not getattr(self.system2, "autonomous", True):
            return
        task = active.text
        if self._s2.submit(("s2", active.epoch, tick, task), lambda: self.system2.predict(obs, task)):
            active.s2_in_flight = True
            active.s2_requested_tick = tick
            active.chunks_since_s2 = 0

    def _collect_system2(self, tick: int, obs: Observation) -> None:
        for result in self._s2.poll():
            _, epoch, requested_tick, task = result.tag
            active = self._active
            if active is None or epoch != active.epoch:
                continue
            active.s2_in_flight = False
            if result.error is not None:
                message = f"{type(result.error).__name__}: {result.error}"
                self._error("system2", message)
                active.s2_next_try = time.monotonic() + self.config.system2_retry_s
                if active.subtask is None:
                    self._set_cause(CAUSE_SYSTEM2, f"System 2 unavailable: {result.error}")
                continue
            if task != active.text:
                continue  # answered for the task text before change_task
            self._clear_cause(CAUSE_SYSTEM2)
            prediction = str(result.value or "")
            if prediction == DONE:
                self._system2_done()
                return
            if not prediction:
                if active.subtask is None:
                    prediction = active.text  # no opinion yet: let the low level follow the task itself
                else:
                    continue
            active.policy_subtask = prediction
            if self.coaching.active is not None:
                release = self.coaching.on_system2(prediction, requested_tick)
                if release:
                    self._release_coaching(release, then=prediction)
                continue
            self._set_subtask(prediction, SubtaskSource.POLICY)

    def _system2_done(self) -> None:
        active = self._active
        success = self._safe_success() if active and active.success_check else None
        if success is False:
            self._finish(TaskState.FAILED, "System 2 said done but the task's success check failed", success=False)
        else:
            reason = "System 2 said done" + (" and the success check passed" if success else "")
            self._finish(TaskState.SUCCEEDED, reason, success=success)

    # ------------------------------------------------------------------ subtasks and coaching
    def _set_subtask(self, text: str, source: SubtaskSource) -> None:
        active = self._active
        if active is None or (active.subtask == text and active.subtask_source == source):
            return
        previous = active.subtask
        active.subtask, active.subtask_source = text, source
        self.queue.push_subtask(active.record_id, text, source)
        self._record("subtask", text, source.value)
        self.executor.retarget()
        self.bus.emit("subtask", self.robot_id, active.record_id, text=text, source=source.value, previous=previous,
                      tick=self._tick)

    def _release_coaching(self, reason: str, then: str | None = None) -> None:
        ended = self.coaching.release()
        active = self._active
        if ended is None or active is None:
            return
        self.bus.emit("coaching", self.robot_id, active.record_id, utterance=None, predicted=ended.predicted,
                      coached=ended.coached, relabel=None, action="released", tick=self._tick, reason=reason)
        if then:
            self._set_subtask(then, SubtaskSource.POLICY)
        else:
            # System 2's latest opinion takes over at once (the task text if it never had one), and it is
            # asked again right away
            if getattr(self.system2, "autonomous", True):
                self._set_subtask(active.policy_subtask or active.text, SubtaskSource.POLICY)
            active.chunks_since_s2 = self.config.every_k_chunks
            active.s2_next_try = 0.0

    def _do_coach(self, task_id: str, utterance: str) -> dict[str, Any]:
        active = self._require_active(task_id)
        command = interpret(utterance)
        if command.kind == "release":
            was = self.coaching.active
            self._release_coaching(f"coach said {command.text!r}")
            return {"kind": "release", "released": was is not None, "tick": self._tick}
        predicted = active.policy_subtask or (active.subtask if active.subtask_source is SubtaskSource.POLICY else None)
        self.coaching.start(command.text, predicted, self._tick)
        relabel = relabel_text(predicted, command.text)
        self._record("event", "interjection", relabel)
        self._set_subtask(command.text, SubtaskSource.COACH)
        self._clear_cause(CAUSE_COACH)
        self.bus.emit("coaching", self.robot_id, task_id, utterance=utterance, predicted=predicted,
                      coached=command.text, relabel=relabel, action="override", tick=self._tick, reason=None)
        return {"kind": "subtask", "subtask": command.text, "predicted": predicted, "relabel": relabel,
                "tick": self._tick}

    # ------------------------------------------------------------------ pause / resume / abort / change
    def _set_cause(self, cause: str, reason: str) -> None:
        active = self._active
        if active is None:
            return
        self._causes[cause] = reason
        record = self.queue.get(active.record_id)
        if record.state is TaskState.RUNNING:
            self.queue.transition(active.record_id, TaskState.PAUSED, reason)
        elif record.reason != reason:
            self.queue.update(active.record_id, reason=self._reason())
            self._on_transition(self.queue.get(active.record_id), TaskState.PAUSED)

    def _clear_cause(self, cause: str, reset: bool = True) -> None:
        active = self._active
        if active is None or cause not in self._causes:
            return
        del self._causes[cause]
        if not self._causes:
            if reset:
                self.executor.reset()
            self.queue.transition(active.record_id, TaskState.RUNNING, None)
        else:
            self.queue.update(active.record_id, reason=self._reason())

    def _reason(self) -> str | None:
        for cause in (CAUSE_OPERATOR, CAUSE_WORKER, CAUSE_SYSTEM2, CAUSE_COACH):
            if cause in self._causes:
                return self._causes[cause]
        return None

    def _do_pause(self, task_id: str) -> TaskRecord:
        self._require_active(task_id)
        if CAUSE_OPERATOR not in self._causes:
            self._record("event", "pause", "paused by operator")
            self.executor.reset()
            self._set_cause(CAUSE_OPERATOR, "paused by operator")
        return self.queue.get(task_id)

    def _do_resume(self, task_id: str) -> TaskRecord:
        self._require_active(task_id)
        if CAUSE_OPERATOR in self._causes:
            self._record("event", "resume", "resumed by operator")
            self._clear_cause(CAUSE_OPERATOR)
        return self.queue.get(task_id)

    def _do_abort(self, task_id: str) -> TaskRecord:
        self._require_active(task_id)
        self._finish(TaskState.ABORTED, "aborted by operator")
        return self.queue.get(task_id)

    def _do_complete(self, task_id: str, success: bool, reason: str) -> TaskRecord:
        self._require_active(task_id)
        self._finish(TaskState.SUCCEEDED if success else TaskState.FAILED, reason, success=success)
        return self.queue.get(task_id)

    def _do_change_task(self, task_id: str, text: str) -> TaskRecord:
        active = self._require_active(task_id)
        text = " ".join(str(text).split())
        if not text:
            raise ValueError("task text must be a non-empty string")
        active.text = text
        active.success_check = True
        try:
            self.robot.set_task(text)
        except Exception as exc:
            active.success_check = False
            self._error("robot", f"robot has no success check for the new task: {exc}")
        self.coaching.release()
        self._record("event", "task_change", text)
        record = self.queue.update(task_id, text=text)
        self._on_transition(record, record.state)
        active.policy_subtask = None
        active.last_progress = self._safe_progress()
        active.s2_next_try = 0.0
        active.chunks_since_s2 = self.config.every_k_chunks
        return record

    def _do_estop_bookkeeping(self) -> None:
        reason = self._pending_estop or "operator"
        if self._active is not None:
            self._record("event", "estop", reason)
            self._finish(TaskState.STOPPED_BY_ESTOP, f"e-stop: {reason}", success=False)
        self._pending_estop = None

    def _do_reset_estop(self) -> None:
        self.robot.reset_estop()
        self._pending_estop = None
        if not self._safety_wired:
            self.bus.emit("safety", self.robot_id, None, kind="estop_reset", message="e-stop released", details={})
        self._notify()

    # ------------------------------------------------------------------ ending a task
    def _safe_success(self) -> bool | None:
        try:
            return self.robot.task_success()
        except Exception as exc:
            self._error("robot", f"task_success failed: {exc}")
            return None

    def _safe_progress(self) -> float | None:
        try:
            return self.robot.task_progress()
        except Exception:
            return None

    def _check_end(self, tick: int, now: float) -> None:
        active = self._active
        if active is None:
            return
        if self.config.max_task_s is not None and now - active.started_mono > self.config.max_task_s:
            success = self._safe_success() if active.success_check else None
            state = TaskState.SUCCEEDED if success else TaskState.FAILED
            self._finish(state, f"time limit of {self.config.max_task_s:g}s reached", success=success)
            return
        if not active.success_check or tick % self.config.success_check_every:
            return
        if self._safe_success():
            self._finish(TaskState.SUCCEEDED, "the task's success check passed", success=True)
            return
        progress = self._safe_progress()
        if progress is not None and active.last_progress is not None and progress > active.last_progress + 1e-9:
            # a subtask boundary: the coached step (if any) is achieved and System 2 should look again
            release = self.coaching.on_progress()
            if release:
                self._release_coaching(release)
            active.chunks_since_s2 = self.config.every_k_chunks
        active.last_progress = progress

    def _finish(self, state: TaskState, reason: str, success: bool | None = None) -> None:
        active = self._active
        if active is None:
            return
        self._active = None
        self._causes = {}
        self.executor.reset()
        self.coaching.release()
        try:
            self.robot.hold()
        except Exception as exc:
            self._error("robot", f"hold failed: {exc}")
        outcome = OUTCOMES[state]
        path = self._record("finish", outcome, success)
        path_text = str(path) if isinstance(path, str | Path) else None
        saved = {} if path_text else {"episode_index": None}  # an empty episode is dropped; its index is reused
        self.queue.transition(active.record_id, state, reason, outcome=outcome, success=success,
                              episode_path=path_text, **saved)
        record = self.queue.get(active.record_id)
        self.bus.emit("episode", self.robot_id, active.record_id, phase="finished",
                      episode_index=record.episode_index, path=path_text, outcome=outcome, success=success)
