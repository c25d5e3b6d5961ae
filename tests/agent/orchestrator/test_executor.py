"""RtcExecutor scheduling, driven tick by tick with chunks whose values encode the tick they were meant for.

A chunk requested at tick t holds value t + i at index i, so an executed action equal to the current
tick proves the executor skipped exactly the actions that went stale while the worker was thinking.
"""

import numpy as np
import pytest

from agent.executor import BackgroundCaller, DelayTracker, RtcExecutor

H = 20


def chunk_for(tick: int) -> np.ndarray:
    return (tick + np.arange(H, dtype=np.float32))[:, None].repeat(2, axis=1)


def drive(executor: RtcExecutor, delay_ticks: int, ticks: int, subtask_at: dict[int, str] | None = None):
    """Simulate the control loop; the 'worker' answers each request exactly `delay_ticks` ticks later."""
    pending: list[tuple[int, object]] = []
    executed: list[tuple[int, float]] = []
    requests = []
    subtask = "pick up the cup"
    for tick in range(ticks):
        if subtask_at and tick in subtask_at:
            subtask = subtask_at[tick]
            executor.retarget()
        for due, request in [p for p in pending if p[0] <= tick]:
            pending.remove((due, request))
            executor.accept(chunk_for(request.tick), request, tick)
        scheduled = executor.action_for(tick)
        if scheduled is not None:
            executed.append((tick, float(scheduled.action[0])))
        if executor.want_request(tick):
            request = executor.build_request(tick, observation=None, subtask=subtask)
            requests.append(request)
            pending.append((tick + max(1, delay_ticks), request))
    return executed, requests


@pytest.mark.parametrize("delay", [1, 5, 10])  # up to 50% of the horizon
def test_no_empty_ticks_after_the_first_chunk_and_actions_stay_on_schedule(delay: int) -> None:
    executor = RtcExecutor(margin_ticks=2)
    executed, requests = drive(executor, delay, 200)
    first_tick = executed[0][0]
    assert first_tick == delay  # the very first chunk cannot come sooner
    assert executor.empty_ticks == delay  # only the cold start was empty
    assert executor.starved_ticks == 0
    assert all(value == tick for tick, value in executed)  # stale actions skipped, none replayed
    assert len(executed) == 200 - delay
    # every continuation request carries what the robot will do meanwhile, and the expected delay
    for request in requests[2:]:
        assert request.prev_chunk is not None
        assert request.prev_chunk[0, 0] == request.tick
        assert request.delay >= delay


def test_late_worker_leaves_empty_ticks_instead_of_replaying_old_actions() -> None:
    executor = RtcExecutor(margin_ticks=0)
    executed, _ = drive(executor, 25, 120)  # delay longer than the horizon: nothing usable ever arrives
    assert executed == []
    assert executor.starved_ticks == 0  # never moved, so never starved
    assert executor.chunks_discarded > 0
    assert executor.empty_ticks == 120


def test_execute_horizon_requests_early_and_retarget_requests_at_once() -> None:
    executor = RtcExecutor(execute_horizon=5, margin_ticks=0)
    _, requests = drive(executor, 1, 60, subtask_at={33: "put the cup in the sink"})
    gaps = np.diff([r.tick for r in requests[1:]])
    assert gaps.max() <= 6
    coached = [r for r in requests if r.subtask == "put the cup in the sink"]
    assert coached and coached[0].tick <= 34


def test_reset_discards_in_flight_replies() -> None:
    executor = RtcExecutor()
    request = executor.build_request(0, None, "x")
    executor.reset()
    assert executor.accept(chunk_for(0), request, 1) is False
    assert executor.action_for(1) is None
    assert executor.want_request(1)


def test_delay_tracker_is_conservative_and_skips_warm_up_after_reset() -> None:
    tracker = DelayTracker(size=3, initial=2)
    assert tracker.estimate == 2
    for d in (9, 3, 4, 5):
        tracker.add(d)
    assert tracker.estimate == 5  # 9 fell out of the window of 3
    tracker.reset()
    tracker.add(40)  # cold start after reconnect: ignored
    assert tracker.estimate == 5


def test_background_caller_reports_values_and_errors() -> None:
    caller = BackgroundCaller("test-caller")
    try:
        assert caller.submit("a", lambda: 41 + 1)
        assert caller.submit("b", lambda: 1 / 0)
        first, second = caller.wait(5), caller.wait(5)
        assert (first.tag, first.value) == ("a", 42)
        assert second.tag == "b" and isinstance(second.error, ZeroDivisionError)
    finally:
        caller.stop()
