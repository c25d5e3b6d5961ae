"""RtcExecutor scheduling, driven tick by tick with chunks whose values encode the tick they were meant for.

The simulated worker is an ideal RTC policy on a one-dimensional "plan": a fresh chunk requested at tick t
holds t + i at index i; a continuation holds prev[0] + i (it extends the leftover it was given). Executed
values that rise by exactly 1 per executed action prove the motion is continuous: no action replayed, none
skipped, across chunk swaps and across ticks where the robot had to hold still.
"""

import itertools

import numpy as np
import pytest

from agent.executor import BackgroundCaller, DelayTracker, RtcExecutor

H = 20


def continuous(executed: list[tuple[int, float]]) -> bool:
    values = [value for _, value in executed]
    return bool(np.all(np.diff(values) == 1.0))


def chunk_for(request, fresh_base: float | None = None) -> np.ndarray:
    """An ideal RTC reply: continue the leftover, else start from where the robot is (`fresh_base`)."""
    if request.prev_chunk is not None:
        base = request.prev_chunk[0, 0]
    else:
        base = request.tick if fresh_base is None else fresh_base
    return (base + np.arange(H, dtype=np.float32))[:, None].repeat(2, axis=1)


def drive(executor: RtcExecutor, delay_ticks, ticks: int, subtask_at: dict[int, str] | None = None):
    """Simulate the control loop; the 'worker' answers each request `delay_ticks` ticks later (int or f(n))."""
    pending: list[tuple[int, object]] = []
    executed: list[tuple[int, float]] = []
    requests = []
    fresh: dict[int, float] = {}
    subtask = "pick up the cup"
    for tick in range(ticks):
        if subtask_at and tick in subtask_at:
            subtask = subtask_at[tick]
            executor.retarget()
        for due, request in [p for p in pending if p[0] <= tick]:
            pending.remove((due, request))
            executor.accept(chunk_for(request, fresh.get(id(request))), request, tick)
        scheduled = executor.action_for(tick)
        if scheduled is not None:
            executed.append((tick, float(scheduled.action[0])))
        if executor.want_request(tick):
            request = executor.build_request(tick, subtask=subtask)
            requests.append(request)
            if executed:
                fresh[id(request)] = executed[-1][1] + (0 if executed[-1][0] == tick else 1)
            delay = delay_ticks(len(requests)) if callable(delay_ticks) else delay_ticks
            pending.append((tick + max(1, delay), request))
    return executed, requests


@pytest.mark.parametrize("delay", [1, 5, 10])  # up to 50% of the horizon
def test_no_empty_ticks_after_the_first_chunk_and_actions_stay_on_schedule(delay: int) -> None:
    executor = RtcExecutor(margin_ticks=2)
    executed, requests = drive(executor, delay, 200)
    first_tick = executed[0][0]
    assert first_tick == delay  # the very first chunk cannot come sooner
    assert executor.empty_ticks == delay  # only the cold start was empty
    assert executor.starved_ticks == 0
    assert continuous(executed)
    assert len(executed) == 200 - delay
    # every continuation request carries what the robot will do meanwhile, and the expected delay
    for request in requests[2:]:
        assert request.prev_chunk is not None
        assert request.prev_chunk[0, 0] == request.tick - delay  # the leftover starts at the current action
        assert request.delay >= delay


@pytest.mark.parametrize(("delay", "max_in_flight"), [(10, 2), (12, 2), (14, 4)])  # 50 % .. 70 % of H
def test_overlapping_requests_keep_the_robot_fed_beyond_half_a_chunk(delay: int, max_in_flight: int) -> None:
    single = RtcExecutor(margin_ticks=1, max_in_flight=1)
    executed_single, _ = drive(single, delay, 300)
    pipelined = RtcExecutor(margin_ticks=1, max_in_flight=max_in_flight)
    executed, requests = drive(pipelined, delay, 300)
    warmed_up = 4 * delay  # the first chunks cannot overlap: nothing was measured yet
    missing = sorted(set(range(warmed_up, 300)) - {tick for tick, _ in executed})
    assert missing == []
    assert continuous(executed)  # a newer chunk always wins over an older one, no replay, no jump
    if delay > 10:  # one request at a time cannot keep up beyond H/2
        assert set(range(warmed_up, 300)) - {tick for tick, _ in executed_single}
    assert any(b.tick - a.tick < delay for a, b in itertools.pairwise(requests[4:]))


def test_slow_first_continuations_do_not_starve_the_robot() -> None:
    # cold chunk in 2 ticks, then continuations (RTC guidance warm-up) take 9 of the 20-step horizon
    executor = RtcExecutor(margin_ticks=1)
    executed, _ = drive(executor, lambda n: 2 if n == 1 else 9, 150)
    assert executor.starved_ticks == 0
    assert continuous(executed)


def test_late_worker_holds_then_continues_where_the_robot_stopped() -> None:
    executor = RtcExecutor(margin_ticks=0, max_in_flight=1)
    executed, _ = drive(executor, 25, 200)  # every reply takes longer than a whole chunk
    assert executor.starved_ticks > 0  # the robot had to hold still in between
    assert continuous(executed)  # ...and resumed from where it stopped, never jumping ahead
    assert len(executed) > 60


def test_execute_horizon_requests_early_and_retarget_requests_at_once() -> None:
    executor = RtcExecutor(execute_horizon=5, margin_ticks=0)
    _, requests = drive(executor, 1, 60, subtask_at={33: "put the cup in the sink"})
    gaps = np.diff([r.tick for r in requests[1:]])
    assert gaps.max() <= 6
    coached = [r for r in requests if r.subtask == "put the cup in the sink"]
    assert coached and coached[0].tick <= 34


def test_reset_discards_in_flight_replies() -> None:
    executor = RtcExecutor()
    request = executor.build_request(0, "x")
    executor.reset()
    assert executor.accept(chunk_for(request), request, 1) is False
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
