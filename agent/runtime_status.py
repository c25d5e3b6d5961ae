"""A robot's live status as the API, the console and benchmarks read it: one model, defined once.

Why a model: the status crosses the HTTP boundary (GET /robots/{id}/status) and the console branches on its keys
(pause reason, coaching countdown, warnings, queue hold), so its shape is written down here, not assembled ad hoc.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from agent.orchestrator import RobotRuntime


class CoachingStatus(BaseModel):
    coached: str
    predicted: str | None  # what System 2 had predicted when the coach spoke
    hold_s: float | None  # the deployment's time limit (None: until released or achieved)
    remaining_s: float | None  # the console's countdown


class RobotStatus(BaseModel):
    robot_id: str
    running: bool
    estopped: bool
    queue_held: bool  # after an e-stop nothing starts by itself
    tick: int
    control_hz: float
    achieved_hz: float
    p99_lateness_ms: float | None
    task_id: str | None
    task_text: str | None
    task_state: str | None
    reason: str | None  # why the task is in its state (the pause reason while paused)
    warnings: list[str]
    pause_causes: dict[str, str]  # every cause holding the task, most important first
    subtask: str | None
    subtask_source: str | None
    policy_subtask: str | None  # System 2's latest opinion (also while a coach overrides it)
    coached: bool
    coaching: CoachingStatus | None
    worker: str
    worker_late_pauses: int
    worker_lost_pauses: int
    queued: int
    max_queued: int
    empty_ticks: int
    starved_ticks: int
    executed_actions: int
    chunks: int
    delay_estimate_ticks: int
    last_delay_ticks: int | None
    last_error: str | None


def robot_status(runtime: RobotRuntime) -> dict[str, Any]:
    """The runtime's status now, as JSON-ready data."""
    active = runtime.lifecycle.active
    record = runtime.queue.get(active.record_id) if active else None
    coaching, executor, health = runtime.subtasks.coaching, runtime.executor, runtime.health
    override = coaching.active
    left = coaching.remaining_s(time.monotonic())
    return RobotStatus(
        robot_id=runtime.robot_id,
        running=runtime.running,
        estopped=bool(runtime.robot.estopped),
        queue_held=runtime.holds.queue_held,
        tick=runtime.tick,
        control_hz=runtime.control_hz,
        achieved_hz=round(runtime.clock.achieved_hz, 2),
        p99_lateness_ms=runtime.clock.p99_lateness_ms(),
        task_id=record.id if record else None,
        task_text=record.text if record else None,
        task_state=record.state.value if record else None,
        reason=record.reason if record else None,
        warnings=list(record.warnings) if record else [],
        pause_causes=active.causes.as_dict() if active else {},
        subtask=active.subtask if active else None,
        subtask_source=active.subtask_source.value if active and active.subtask_source else None,
        policy_subtask=active.policy_subtask if active else None,
        coached=override is not None,
        coaching=None
        if override is None
        else CoachingStatus(
            coached=override.coached,
            predicted=override.predicted,
            hold_s=coaching.hold_s,
            remaining_s=None if left is None else round(left, 1),
        ),
        worker=health.status.value,
        worker_late_pauses=health.late_pauses,
        worker_lost_pauses=health.lost_pauses,
        queued=runtime.queue.queued_count(),
        max_queued=runtime.config.max_queued,
        empty_ticks=executor.empty_ticks,
        starved_ticks=executor.starved_ticks,
        executed_actions=executor.executed,
        chunks=executor.chunks_used,
        delay_estimate_ticks=executor.delays.estimate,
        last_delay_ticks=executor.last_delay_ticks,
        last_error=runtime.events.last_error,
    ).model_dump(mode="json")
