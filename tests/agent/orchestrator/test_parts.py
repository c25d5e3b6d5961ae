"""The orchestrator's decision-making parts, tick by tick with exact numbers (no threads, no clocks, no I/O)."""

from __future__ import annotations

import pytest

from agent.admission import NO_SUCCESS_CHECK, TaskAdmission, TaskRejected
from agent.failures import classify
from agent.loop_clock import LoopClock
from agent.pauses import PauseCause, PauseCauses
from agent.prompt_budget import TokenCount
from agent.system2 import System2Error, System2Unavailable
from agent.system2_schedule import System2Schedule
from agent.worker_health import WorkerHealth, WorkerStatus
from policy.client import PolicyServerError, PolicyUnavailable

KNOWN = ["put the can in the sink", "put the fruit in the bowl"]


class FixedBudget:
    """Tokens = number of characters // 4 (a stand-in with exact numbers; the real count is tested elsewhere)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def measure(self, task: str) -> TokenCount:
        return TokenCount(tokens=len(task) // 4, limit=self.limit)


# ---------------------------------------------------------------------------------------------- pause causes
def test_pause_causes_stack_and_the_most_important_reason_shows() -> None:
    causes = PauseCauses()
    first = causes.add(PauseCause.WORKER, "policy worker late by 2100 ms (limit 2000 ms)")
    assert first.started_pause and first.reason == "policy worker late by 2100 ms (limit 2000 ms)"
    on_top = causes.add(PauseCause.ESTOP, "e-stop: child in the kitchen")
    assert not on_top.started_pause and on_top.reason == "e-stop: child in the kitchen"
    below = causes.add(PauseCause.OPERATOR, "e-stop released: waiting for an operator to resume")
    assert not below.shown_reason_changed  # hidden under the e-stop
    causes.remove(PauseCause.OPERATOR, "x")
    assert causes.add(PauseCause.ESTOP, "e-stop: child in the kitchen") is None  # nothing changed
    # releasing the e-stop while the worker is still late: still paused, the worker's reason is back
    released = causes.remove(PauseCause.ESTOP, "resumed by operator")
    assert released.paused and not released.ended_pause
    assert released.reason == "policy worker late by 2100 ms (limit 2000 ms)"
    assert causes.as_dict() == {"worker": "policy worker late by 2100 ms (limit 2000 ms)"}
    resumed = causes.remove(PauseCause.WORKER, "policy worker on time again")
    assert resumed.ended_pause and resumed.reason == "policy worker on time again" and not causes.paused
    assert causes.remove(PauseCause.WORKER, "x") is None


# ---------------------------------------------------------------------------------------------- worker health
def test_late_worker_pauses_once_and_resumes_only_after_two_replies_within_half_the_limit() -> None:
    health = WorkerHealth(late_s=2.0, resume_s=1.0, resume_replies=2)
    assert health.check_late(now=10.0, oldest_request_at=8.5, has_chunk=False) is None  # 1.5 s: not late
    assert health.check_late(now=10.0, oldest_request_at=7.0, has_chunk=True) is None  # still executing
    verdict = health.check_late(now=10.0, oldest_request_at=7.9, has_chunk=False)
    assert verdict.pause == "policy worker late by 2100 ms (limit 2000 ms)"
    assert health.status is WorkerStatus.LATE and health.late_pauses == 1 and health.wants_measurement
    assert health.check_late(now=20.0, oldest_request_at=7.9, has_chunk=False) is None  # paused once, not per tick
    # replies that made the 2 s limit but not the 1 s resume bar keep the robot still: no flapping
    assert health.reply(1.8).use_chunk is False
    assert health.reply(0.6).use_chunk is False  # one good reply is not enough
    assert health.reply(1.2).use_chunk is False  # and a slow one starts the count again
    assert health.reply(0.6).resume is None
    resumed = health.reply(0.7)
    assert resumed.use_chunk and resumed.restored and not resumed.reset_executor
    assert resumed.resume == "policy worker on time again (2 replies within 1000 ms, last 700 ms)"
    assert health.status is WorkerStatus.OK and health.late_pauses == 1 and health.lost_pauses == 0


def test_lost_worker_pauses_is_probed_on_schedule_and_resumes_fresh() -> None:
    health = WorkerHealth(late_s=2.0, resume_s=1.0, probe_s=0.5)
    lost = health.unavailable("cannot connect to policy worker at ws://127.0.0.1:9", now=100.0)
    assert lost.pause == "policy worker unavailable: cannot connect to policy worker at ws://127.0.0.1:9"
    assert lost.reset_executor and lost.status_event is WorkerStatus.LOST and health.lost_pauses == 1
    assert health.unavailable("again", now=100.1) is None  # counted once
    assert not health.probe_due(100.55) and health.probe_due(100.6)
    assert not health.probe_due(101.5)  # one probe at a time
    assert health.probe_answered(False) is None and health.status is WorkerStatus.LOST
    assert health.probe_due(101.6)
    back = health.probe_answered(True)
    assert back.resume == "policy worker is reachable again" and back.reset_executor
    assert health.status is WorkerStatus.OK


# ---------------------------------------------------------------------------------------------- admission
def test_admission_refuses_unknown_tasks_unless_allowed_and_then_warns() -> None:
    admission = TaskAdmission(KNOWN, budget=None, max_queued=20)
    assert admission.check("Put the can in the sink.", queued=0).warnings == []
    with pytest.raises(TaskRejected) as rejected:
        admission.check("wipe the counter", queued=0)
    assert (rejected.value.status, rejected.value.code) == (422, "unknown_task")
    assert rejected.value.details == {"known_tasks": KNOWN}
    assert "'put the can in the sink', 'put the fruit in the bowl'" in rejected.value.message
    assert admission.check("wipe the counter", queued=0, allow_unlisted=True).warnings == [NO_SUCCESS_CHECK]
    assert TaskAdmission([], None, 20).check("wipe the counter", queued=0).warnings == []  # an open task list


def test_admission_checks_the_token_budget_and_the_queue_bound() -> None:
    admission = TaskAdmission([], budget=FixedBudget(limit=64), max_queued=3)
    with pytest.raises(TaskRejected) as too_long:
        admission.check("x" * 289, queued=0)
    assert (too_long.value.status, too_long.value.code) == (422, "task_too_long_for_policy")
    assert too_long.value.details == {"tokens": 72, "limit": 64}
    assert "needs 72 prompt tokens but this policy accepts at most 64" in too_long.value.message
    assert admission.check("x" * 256, queued=2).text == "x" * 256  # 64 tokens: exactly the limit
    with pytest.raises(TaskRejected) as full:
        admission.check("x", queued=3)
    assert (full.value.status, full.value.code, full.value.details) == (429, "queue_full", {"limit": 3})


# ---------------------------------------------------------------------------------------------- failures
@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (PolicyUnavailable("policy worker at ws://x did not answer within 5s"), True),
        (System2Unavailable("System-2 server down after 3 attempt(s)"), True),
        (TimeoutError("timed out"), True),
        (PolicyServerError("bad request: prompt is too long: 98 tokens, this policy accepts at most 64"), False),
        (System2Error("System-2 server rejected the request: HTTP 400: unknown key"), False),
        (ValueError("unexpected"), False),
    ],
)
def test_transient_errors_pause_permanent_ones_fail(error, transient) -> None:
    failure = classify(error)
    assert failure.transient is transient and failure.message == str(error)


# ---------------------------------------------------------------------------------------------- System 2 schedule
def test_system2_is_asked_first_then_every_k_chunks_and_after_a_failure_waits() -> None:
    schedule = System2Schedule(every_k_chunks=3, retry_s=2.0)
    assert schedule.due(now=0.0, has_subtask=False)
    schedule.asked()
    assert not schedule.due(now=0.0, has_subtask=False)  # one question at a time
    schedule.answered()
    for _ in range(2):
        schedule.on_chunk()
    assert not schedule.due(now=1.0, has_subtask=True)
    schedule.on_chunk()
    assert schedule.due(now=1.0, has_subtask=True)
    schedule.asked()
    schedule.failed(now=5.0)
    assert not schedule.due(now=6.9, has_subtask=False) and schedule.due(now=7.0, has_subtask=False)
    schedule.look_again()
    assert schedule.due(now=0.0, has_subtask=True)


# ---------------------------------------------------------------------------------------------- loop clock
def test_loop_clock_paces_measures_lateness_and_reanchors_when_far_behind() -> None:
    clock = LoopClock(period=0.05)
    clock.idle(now=10.0)
    clock.tick_started(10.0)
    assert clock.tick_done(10.01) == pytest.approx(0.04)
    clock.tick_started(10.07)  # 20 ms late
    assert clock.lateness == pytest.approx([0.0, 0.02])
    assert clock.achieved_hz == pytest.approx(1 / 0.07)
    assert clock.tick_done(10.30) == 0.0  # 150 ms behind the 10.10 deadline: re-anchor, do not burst
    clock.tick_started(10.30)
    assert clock.lateness[-1] == pytest.approx(0.2)  # against its schedule, before re-anchoring
    assert clock.tick_done(10.31) == pytest.approx(0.04)
    assert clock.work == pytest.approx([0.01, 0.23, 0.01])


# ---------------------------------------------------------------------------------------------- end check
def test_end_check_time_limit_success_and_progress_boundaries() -> None:
    from agent.task_end import EndCheck
    from agent.types import TaskState

    check = EndCheck(max_task_s=60.0, check_every=10)
    asked: list[str] = []

    def success() -> bool:
        asked.append("success")
        return False

    def progress() -> float:
        asked.append("progress")
        return 0.5

    decision, last = check.decide(7, 10.0, True, success, progress, last_progress=0.0)
    assert decision.end is None and not decision.progressed and last == 0.0 and asked == []  # not a check tick
    decision, last = check.decide(10, 10.0, True, success, progress, last_progress=0.0)
    assert decision.progressed and last == 0.5 and asked == ["success", "progress"]
    decision, last = check.decide(20, 10.0, True, success, progress, last_progress=0.5)
    assert not decision.progressed and last == 0.5
    decision, _ = check.decide(21, 60.5, True, success, progress, last_progress=0.5)
    assert decision.end == (TaskState.FAILED, "time limit of 60s reached", False)
    decision, _ = check.decide(30, 1.0, True, lambda: True, progress, last_progress=0.5)
    assert decision.end == (TaskState.SUCCEEDED, "the task's success check passed", True)
    decision, _ = check.decide(30, 1.0, False, success, progress, last_progress=None)
    assert decision == type(decision)()  # no success check (an unlisted task): only the time limit applies
