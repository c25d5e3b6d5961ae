"""The control thread's side of System 1: what each reply from the worker means for the active task.

A chunk is executed only when the worker's health allows it (agent/worker_health.py) and no person holds the robot;
a transient failure (worker gone, timed out) pauses the task and the worker is probed until it answers; a permanent
one (a request the worker refused, a policy for another robot) fails the task with the message, because the same
request can never succeed. Late pauses keep one measuring request out so the pause can end (with hysteresis).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.executor import RtcExecutor
from agent.failures import classify
from agent.pauses import PauseCause
from agent.publisher import RuntimeEvents
from agent.subtask_driver import Ending
from agent.system1 import ChunkArrived, ChunkFailed, ChunkPipeline, ProbeAnswered, System1Reply, WarmupDone
from agent.task_lifecycle import ActiveTask, TaskLifecycle
from agent.types import TaskState
from agent.worker_health import HealthVerdict, WorkerHealth


class WorkerLink:
    def __init__(
        self,
        pipeline: ChunkPipeline,
        health: WorkerHealth,
        lifecycle: TaskLifecycle,
        events: RuntimeEvents,
        executor: Callable[[], RtcExecutor],
        on_chunk: Callable[[ActiveTask, ChunkArrived], None],
    ) -> None:
        self.pipeline = pipeline
        self.health = health
        self.lifecycle = lifecycle
        self.events = events
        self._executor = executor  # the current task's executor (replaced per task)
        self._on_chunk = on_chunk

    def may_request(self, running: bool) -> bool:
        """Chunks are asked for while the task runs, and during a late pause (one at a time, to measure)."""
        if running:
            return True
        active = self.lifecycle.active
        measuring = self.health.wants_measurement and active is not None and active.causes.top is PauseCause.WORKER
        return measuring and self._executor().in_flight is None

    def watch(self, now: float) -> None:
        """Once per tick: a late worker pauses the task; a lost one is probed."""
        executor = self._executor()
        oldest = executor.in_flight
        self.apply(self.health.check_late(now, oldest.submitted_at if oldest else None, executor.has_chunk))
        if self.health.probe_due(now):
            self.pipeline.probe()

    def collect(self, replies: list[System1Reply], tick: int) -> Ending | None:
        """Apply every reply; an Ending when a permanent failure dooms the active task."""
        executor = self._executor()
        for reply in replies:
            active = self.lifecycle.active
            if isinstance(reply, WarmupDone):
                if reply.error is None:
                    self.health.warmed_up()
                elif self.events.last_error != f"worker: {reply.error}":  # one report, not one per connection
                    self.events.error(None, "worker", str(reply.error))
            elif isinstance(reply, ProbeAnswered):
                self.apply(self.health.probe_answered(reply.healthy))
            elif active is None or reply.request.epoch != executor.epoch:
                continue  # for a task, or a state of the executor, that is gone
            elif isinstance(reply, ChunkFailed):
                executor.request_failed(reply.request)
                failure = classify(reply.error)
                if not failure.transient:
                    self.events.error(active.record_id, "worker", failure.message)
                    return Ending(TaskState.FAILED, f"policy worker refused the task: {failure.message}")
                self.apply(self.health.unavailable(failure.message, time.monotonic()))
            else:
                self._arrived(active, reply, executor, tick)
        return None

    def _arrived(self, active: ActiveTask, reply: ChunkArrived, executor: RtcExecutor, tick: int) -> None:
        verdict = self.health.reply(reply.latency_s)
        held_by_person = PauseCause.OPERATOR in active.causes or PauseCause.ESTOP in active.causes
        if not verdict.use_chunk or held_by_person:
            executor.request_failed(reply.request)
            self.apply(verdict)
            return
        used = executor.accept(reply.chunk, reply.request, tick, chunk_id=reply.chunk_id)
        self.apply(verdict)
        if used:
            self._on_chunk(active, reply)

    def apply(self, verdict: HealthVerdict | None) -> None:
        if verdict is None:
            return
        active_id = self.lifecycle.active_id
        if verdict.status_event is not None:
            self.events.worker(active_id, verdict.status_event.value, verdict.pause or "")
        if verdict.restored:
            self.events.worker(active_id, "restored", verdict.resume or "")
        if verdict.reset_executor:
            self._executor().reset()
        if verdict.pause:
            self.lifecycle.hold(PauseCause.WORKER, verdict.pause)
        if verdict.resume:
            self.lifecycle.release(PauseCause.WORKER, verdict.resume)
