"""The long-horizon loop for one robot: task queue, System 2 → subtask, System 1 → chunks, executor → robot.

One `RobotRuntime` owns one robot and runs one control thread. Each tick it observes, collects what the background
callers brought back (chunks, System-2 answers), executes the action the RTC executor scheduled (or holds still),
records the frame and asks for the next chunk early; nothing on the control thread waits for the network. The
decisions are made by small pure parts tested tick by tick (executor, worker_health, system2_schedule, coaching,
pauses, holds, admission, failures, task_end, loop_clock); this module wires them together, top to bottom.

Operator commands are queued to the control thread and applied at the start of the next tick, so a coach's
utterance reaches the low level within one tick and no command races the loop. E-stop latches on the safety layer
at once, from the caller's thread; the active task then *pauses* with reason "e-stop" and the queue is held.
Releasing the e-stop never moves the robot by itself: the task stays paused (the operator is now the reason) and
queued tasks stay queued until an operator resumes one or starts a new one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from agent.admission import TaskAdmission, TaskRejected
from agent.control_commands import CommandTimeout, ControlCommands
from agent.events import EventBus
from agent.executor import RtcExecutor
from agent.holds import OperatorHolds
from agent.loop_clock import LoopClock
from agent.orchestrator_config import OrchestratorConfig, RuntimeCommandError
from agent.pauses import PauseCause
from agent.prompt_budget import PromptBudget
from agent.protocols import ChunkSource, ControlledRobot, EpisodeRecorder
from agent.publisher import RuntimeEvents
from agent.recording import GuardedRecorder
from agent.runtime_status import robot_status
from agent.subtask_driver import SubtaskDriver
from agent.system1 import ChunkArrived, ChunkPipeline
from agent.system2 import System2Backend
from agent.task_end import EndCheck
from agent.task_lifecycle import ActiveTask, TaskLifecycle
from agent.task_queue import TaskQueue, TaskRecord, UnknownTask
from agent.types import InvalidTransition, TaskState
from agent.worker_health import WorkerHealth
from agent.worker_link import WorkerLink
from robots.base import Robot
from robots.types import Observation, SafetyEvent

logger = logging.getLogger(__name__)

__all__ = ["OrchestratorConfig", "RobotRuntime", "RuntimeCommandError", "TaskRecord", "TaskRejected", "UnknownTask"]

T = TypeVar("T")


class RobotRuntime:
    """One robot's task queue and control loop (see module docstring). Thread-safe public methods."""

    def __init__(
        self,
        robot_id: str,
        robot: Robot,
        policy: ChunkSource,
        system2: System2Backend,
        recorder: EpisodeRecorder | None,
        bus: EventBus,
        config: OrchestratorConfig | None = None,
        prompt_budget: PromptBudget | None = None,
    ) -> None:
        from robots.safety import SafeRobot

        self.robot_id = robot_id
        self.config = cfg = config or OrchestratorConfig()
        self.events = RuntimeEvents(bus, robot_id)
        self.bus = bus
        safe = robot if isinstance(robot, SafeRobot) else SafeRobot(robot)
        if safe.on_event is None:
            safe.on_event = self._on_safety_event
        # the safety layer reports its own e-stops; publish ours only when its events do not reach the bus
        self._safety_wired = safe.on_event == self._on_safety_event
        self.robot: ControlledRobot = safe
        self.description = safe.describe()
        self.system2 = system2
        self.recorder = recorder
        self.control_hz = float(cfg.control_hz or self.description.control_hz)
        self.period = 1.0 / self.control_hz
        self.queue = TaskQueue(robot_id, on_transition=self._on_transition)
        self.admission = TaskAdmission(self.description.tasks, prompt_budget, cfg.max_queued)
        self.lifecycle = TaskLifecycle(
            self.queue, self.robot, GuardedRecorder(recorder, self._recorder_failed), self.events
        )
        self.holds = OperatorHolds(self.lifecycle, self.robot)
        self.health = WorkerHealth(cfg.worker_late_s, cfg.worker_late_s * cfg.worker_resume_fraction,
                                   cfg.worker_resume_replies, cfg.worker_probe_s)  # fmt: skip
        self.system1 = ChunkPipeline(robot_id, policy, self.description, cfg.max_in_flight)
        self.executor = self._new_executor()
        self.worker = WorkerLink(
            self.system1, self.health, self.lifecycle, self.events, lambda: self.executor, on_chunk=self._chunk_used
        )
        self.subtasks = SubtaskDriver(robot_id, system2, self.lifecycle, self.events, cfg.every_k_chunks,
                                      cfg.system2_retry_s, cfg.coach_hold_s, retarget=lambda: self.executor.retarget())  # fmt: skip
        self.commands = ControlCommands(cfg.command_timeout_s)
        self._submit_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tick = 0
        self._latest_obs: Observation | None = None
        self.clock = LoopClock(self.period)
        self.end_check = EndCheck(cfg.max_task_s, cfg.success_check_every)

    def _new_executor(self, previous: RtcExecutor | None = None) -> RtcExecutor:
        """Fresh counters per task; the epoch keeps counting so a reply meant for the last task is never used."""
        cfg = self.config
        return RtcExecutor(cfg.execute_horizon, cfg.rtc_margin_ticks, cfg.delay_buffer, max_in_flight=self.system1.width,
                           first_epoch=previous.epoch + 1 if previous else 0)  # fmt: skip

    # ================================================================== public API (any thread)
    def start(self) -> None:
        """Start the control thread (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{self.robot_id}-control", daemon=True)
        self.commands.loop_thread = self._thread
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop: the active task and queued ones end as INTERRUPTED, the robot holds still."""
        if self.running:
            self._stop.set()
            assert self._thread is not None
            self._thread.join(timeout)
        self.lifecycle.finish(TaskState.INTERRUPTED, "runtime stopped")
        for record in self.queue.all():
            if record.state is TaskState.QUEUED:
                self.queue.transition(record.id, TaskState.INTERRUPTED, "runtime stopped")
        self.system1.close()
        self.subtasks.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, text: str, task_id: str | None = None, allow_unlisted: bool = False) -> TaskRecord:
        """Queue a task, or raise TaskRejected (unknown task, prompt over the policy's budget, queue full).

        After an e-stop the queue is held; an operator starting a task on an otherwise empty queue releases it.
        """
        with self._submit_lock:
            admitted = self.admission.check(text, self.queue.queued_count(), allow_unlisted)
            self.holds.task_submitted(self.lifecycle.active is None, not self.queue.queued_count())
            record = self.queue.add(admitted.text, task_id, warnings=admitted.warnings)
        self.commands.notify()
        return record

    def pause(self, task_id: str) -> TaskRecord:
        return self._command(lambda: self._do_pause(task_id))

    def resume(self, task_id: str) -> TaskRecord:
        """Resume the paused active task, or (after an e-stop held the queue) start this queued task now."""
        return self._command(lambda: self._do_resume(task_id))

    def abort(self, task_id: str) -> TaskRecord:
        record = self.queue.get(task_id)
        if record.state is TaskState.QUEUED:
            return self.queue.transition(task_id, TaskState.ABORTED, "aborted by operator while queued")
        return self._command(lambda: self._do_finish(task_id, TaskState.ABORTED, "aborted by operator", None))

    def change_task(self, task_id: str, text: str) -> TaskRecord:
        return self._command(lambda: self._do_change_task(task_id, text))

    def coach(self, task_id: str, utterance: str) -> dict[str, Any]:
        """Apply a coach's utterance at the next tick. Returns what happened (kind, subtask, relabel, tick)."""
        return self._command(lambda: self._do_coach(task_id, utterance))

    def complete(self, task_id: str, success: bool, reason: str = "operator judged the outcome") -> TaskRecord:
        """The operator ends the active task with an outcome (robots without a success check)."""
        state = TaskState.SUCCEEDED if success else TaskState.FAILED
        return self._command(lambda: self._do_finish(task_id, state, reason, success))

    def estop(self, reason: str = "operator") -> None:
        """Latch the e-stop on the safety layer now; the active task pauses (reason e-stop) and the queue is held."""
        self.robot.estop(reason)
        self.holds.estop_latched()
        if not self._safety_wired:
            self.bus.emit("safety", self.robot_id, self.lifecycle.active_id, kind="estop", message=reason, details={})
        self._command(lambda: self._do_estop(reason), wait=False)

    def reset_estop(self) -> None:
        """Release the latch. Nothing moves: the task stays paused and the queue held until an operator acts."""
        self._command(self._do_reset_estop)

    def status(self) -> dict[str, Any]:
        """agent/runtime_status.py RobotStatus as JSON-ready data."""
        return robot_status(self)

    @property
    def tick(self) -> int:
        return self._tick

    def lateness_samples(self) -> list[float]:
        """Seconds each recent control tick started after its schedule (for benchmarks and the console)."""
        return list(self.clock.lateness)

    def tick_work_samples(self) -> list[float]:
        """Seconds each recent control tick spent working (observe, act, record, bookkeeping)."""
        return list(self.clock.work)

    def reset_timing(self) -> None:
        self.clock.reset_samples()

    def tasks(self) -> list[TaskRecord]:
        return self.queue.all()

    def task(self, task_id: str) -> TaskRecord:
        return self.queue.get(task_id)

    def latest_observation(self) -> Observation | None:
        return self._latest_obs

    def wait(self, task_id: str, timeout: float, states: set[TaskState] | None = None) -> TaskRecord:
        """Block until the task reaches one of `states` (default: any terminal state); TimeoutError otherwise."""
        return self.queue.wait(task_id, timeout, states)

    # ================================================================== commands (control thread)
    def _command(self, fn: Callable[[], T], wait: bool = True) -> T:
        try:
            return self.commands.run(fn, wait)  # type: ignore[return-value]
        except CommandTimeout as exc:
            raise RuntimeCommandError(f"robot {self.robot_id}: {exc}") from None

    def _require_active(self, task_id: str) -> ActiveTask:
        record = self.queue.get(task_id)  # UnknownTask for a bad id
        active = self.lifecycle.active
        if active is None or active.record_id != task_id:
            raise RuntimeCommandError(
                f"task {task_id} is not the active task on robot {self.robot_id} (it is {record.state.value})"
            )
        return active

    def _do_pause(self, task_id: str) -> TaskRecord:
        self._require_active(task_id)
        self.executor.reset()
        self.holds.pause()
        return self.queue.get(task_id)

    def _do_resume(self, task_id: str) -> TaskRecord:
        self.holds.check_may_resume(self.robot_id)
        record = self.queue.get(task_id)
        if record.state is TaskState.QUEUED and self.lifecycle.active is None:
            self.holds.start_held()  # the operator starts this one (ahead of the queue)
            self._begin(record)
        else:
            self._require_active(task_id)
            self.holds.resume()
        return self.queue.get(task_id)

    def _do_finish(self, task_id: str, state: TaskState, reason: str, success: bool | None) -> TaskRecord:
        self._require_active(task_id)
        self._finish(state, reason, success)
        return self.queue.get(task_id)

    def _do_change_task(self, task_id: str, text: str) -> TaskRecord:
        self._require_active(task_id)
        record = self.lifecycle.change_text(text)
        self._on_transition(record, record.state)
        self.subtasks.task_changed()
        return record

    def _do_coach(self, task_id: str, utterance: str) -> dict[str, Any]:
        return self.subtasks.coach(self._require_active(task_id), utterance, self._tick)

    def _do_estop(self, reason: str) -> None:
        if self.holds.estop(reason):
            self.executor.reset()

    def _do_reset_estop(self) -> None:
        self.robot.reset_estop()
        if not self._safety_wired:
            self.bus.emit("safety", self.robot_id, None, kind="estop_reset", message="e-stop released", details={})
        self.holds.estop_released()
        self.commands.notify()

    # ================================================================== events in
    def _on_transition(self, record: TaskRecord, previous: TaskState | None) -> None:
        moving = {TaskState.RUNNING, TaskState.PAUSED}
        cause = record.pauses[-1].cause if record.pauses and {record.state, previous} <= moving else None
        self.events.task_state(
            record.id, record.state.value, previous.value if previous else None, record.reason, record.text, cause
        )
        self.commands.notify()

    def _on_safety_event(self, event: SafetyEvent) -> None:
        active_id = self.lifecycle.active_id
        if self.events.safety(active_id, event, time.monotonic()) and active_id and event.kind == "watchdog":
            self.lifecycle.recorder.event(event.kind, event.message)

    def _recorder_failed(self, message: str) -> None:
        self.events.error(self.lifecycle.active_id, "recorder", message)

    # ================================================================== the loop
    def _loop(self) -> None:
        try:
            self._latest_obs = self.robot.observe()  # the first render (a GL context for this thread) costs most
        except Exception as exc:
            self.events.error(None, "robot", f"first observation failed: {exc}")
        self.system1.warm_up()
        idle_next_obs = time.monotonic()
        while not self._stop.is_set():
            self.commands.apply_pending()
            if self.lifecycle.active is None and not self._start_next():
                now = time.monotonic()
                self.worker.collect(self.system1.poll(), self._tick)  # a worker that does not fit is reported at once
                if self.config.idle_observe_hz > 0 and now >= idle_next_obs:
                    idle_next_obs = now + 1.0 / self.config.idle_observe_hz
                    try:
                        self._latest_obs = self.robot.observe()
                    except Exception as exc:
                        self.events.error(None, "robot", f"observe failed while idle: {exc}")
                self.commands.idle_wait(0.05)
                self.clock.idle(time.monotonic())
                continue
            self.clock.tick_started(time.monotonic())
            try:
                self._control_tick()
            except Exception as exc:
                logger.exception("control tick failed")
                self.events.error(
                    self.lifecycle.active_id, "orchestrator", f"control tick failed: {type(exc).__name__}: {exc}"
                )
                self._finish(TaskState.FAILED, f"internal error: {type(exc).__name__}: {exc}")
            self._tick += 1
            wait_s = self.clock.tick_done(time.monotonic())
            if wait_s > 0:
                self._stop.wait(wait_s)
        with contextlib.suppress(Exception):
            self.robot.stand_down()

    def _start_next(self) -> bool:
        if not self.holds.may_start_next():
            return False
        record = self.queue.next_queued()
        if record is None:
            return False
        try:
            self._begin(record)
        except InvalidTransition:
            return False  # aborted by another thread between the two lines above
        return True

    def _begin(self, record: TaskRecord) -> None:
        self.executor = self._new_executor(self.executor)
        self.subtasks.new_task()
        obs = self.lifecycle.begin(record, self.config.reset_robot_on_task, self.config.seed)
        self._latest_obs = obs or self._latest_obs
        if not self.system2.autonomous:
            self.lifecycle.hold(PauseCause.COACH, "waiting for a coach to give the first subtask")

    def _finish(self, state: TaskState, reason: str, success: bool | None = None) -> None:
        self.executor.reset()
        self.subtasks.new_task()
        self.lifecycle.finish(state, reason, success)

    # ------------------------------------------------------------------ one tick, top to bottom
    def _control_tick(self) -> None:
        active = self.lifecycle.active
        if active is None:
            return
        tick, tick_started = self._tick, time.monotonic()
        obs = self.robot.observe()
        self._latest_obs = obs
        replies = self.system1.poll()
        if (
            not replies
            and not active.causes.paused
            and self.executor.in_flight is not None
            and self.executor.remaining(tick) == 0
        ):
            # nothing left to execute but a chunk is on its way: wait a little inside this tick rather than
            # hold for a whole one (a reply that lands just after the tick started would otherwise be missed)
            grace = self.config.late_grace_fraction * self.period - (time.monotonic() - tick_started)
            if grace > 0:
                replies = self.system1.wait(grace)
        for ending in (self.worker.collect(replies, tick), self.subtasks.collect(tick)):
            if ending is not None and self.lifecycle.active is active:
                self._finish(ending.state, ending.reason, ending.success)
        if self.lifecycle.active is not active:
            return  # ended (permanent error, System 2 said done)

        running = not active.causes.paused
        scheduled = self.executor.action_for(tick) if running else None
        # ask for the next chunk before acting: every millisecond the request leaves earlier is slack for RTC
        if active.subtask and self.worker.may_request(running) and self.executor.want_request(tick):
            request = self.executor.build_request(tick, active.subtask)
            if not self.system1.request(request, obs):
                self.executor.request_failed(request)
        if scheduled is not None:
            self.robot.act(scheduled.action)
            self.lifecycle.recorder.record(obs, scheduled.action, scheduled.chunk_id, scheduled.index)
        else:
            self.robot.hold()

        now = time.monotonic()
        self.worker.watch(now)
        self.subtasks.ask(tick, obs, now)
        self.subtasks.check_time(now, tick)
        self._check_end(tick, now)
        if tick % self.config.state_event_every == 0:
            self.events.state(
                active.record_id,
                tick,
                obs,
                self.description.state_names,
                None if scheduled is None else scheduled.action,
                self.clock.achieved_hz,
                self.executor.empty_ticks,
                self.executor.remaining(tick + 1),
            )

    def _chunk_used(self, active: ActiveTask, reply: ChunkArrived) -> None:
        """A chunk arrived and will be executed: count it for System 2 and coaching, and show it."""
        self.subtasks.on_chunk(reply.request.subtask == active.subtask)
        self.events.chunk(
            active.record_id,
            reply,
            self.description.action_names,
            self.executor.last_delay_ticks,
            self.config.publish_chunk_actions,
        )

    def _check_end(self, tick: int, now: float) -> None:
        active = self.lifecycle.active
        if active is None:
            return
        decision, active.last_progress = self.end_check.decide(
            tick,
            now - active.started_s,
            active.success_check,
            self.lifecycle.success,
            self.lifecycle.progress,
            active.last_progress,
        )
        if decision.end is not None:
            self._finish(*decision.end)
        elif decision.progressed:
            self.subtasks.progress_advanced(tick)  # a boundary: a coached step is achieved, System 2 looks again
