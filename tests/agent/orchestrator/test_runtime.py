"""The whole loop on the simulated kitchen with the real policy worker on loopback (tiny random model).

Every test drives a real RobotRuntime: real MuJoCo robot behind the real safety layer, real WebSocket worker,
real System-2 backends, real LeRobotDataset recording read back from disk. No test asserts wall-clock timing;
waits have timeouts and conditions are checked on ticks, states and recorded data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from agent.events import EventBus
from agent.orchestrator import OrchestratorConfig, RobotRuntime, RuntimeCommandError
from agent.system2 import CoachOnlySystem2, LocalSystem2, OpenAISystem2
from agent.types import SubtaskSource, TaskState
from tests.agent.orchestrator.openai_server import RuleServer, serve_rules
from tests.support import free_port, wait_until

TASK = "put the can in the sink"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@contextlib.contextmanager
def make_runtime(sim_robot, worker_url, tmp_path, system2=None, record=True, **config) -> Iterator[tuple]:
    from agent.recorder import EpisodeRecorder
    from policy.client import PolicyClient

    # generous timeouts: on a loaded shared CPU a tiny-model chunk can take seconds (never asserted on)
    policy = PolicyClient(worker_url, timeout_s=60.0)
    s2_client = PolicyClient(worker_url, timeout_s=60.0)
    recorder = EpisodeRecorder(tmp_path / "episodes", sim_robot.describe()) if record else None
    bus = EventBus()
    events = bus.subscribe(maxsize=100_000)
    config.setdefault("max_task_s", None)
    config.setdefault("idle_observe_hz", 0)
    config.setdefault("worker_late_s", 120.0)  # worker lateness is tested in test_worker_faults
    config.setdefault("max_in_flight", 1)
    runtime = RobotRuntime(
        "kitchen", sim_robot, policy, system2 or LocalSystem2(s2_client), recorder, bus, OrchestratorConfig(**config)
    )
    runtime.start()
    try:
        yield runtime, events, recorder
    finally:
        runtime.stop()
        if recorder is not None:
            recorder.close()
        policy.close()
        s2_client.close()


def chunks_seen(events_list) -> list:
    return [e for e in events_list if e.kind == "chunk"]


def read_episode(path, index):
    from policy.data.reader import LeRobotDatasetReader

    reader = LeRobotDatasetReader(path)
    info = next(e for e in reader.episodes if e.index == index)
    return reader, info


def test_whole_loop_runs_records_and_ends_in_a_defined_state(sim_robot, worker_url, tmp_path) -> None:
    with make_runtime(sim_robot, worker_url, tmp_path, max_task_s=None, every_k_chunks=1) as (runtime, events, _):
        record = runtime.submit(TASK)
        wait_until(
            lambda: runtime.status()["chunks"] >= 4 and runtime.task(record.id).subtasks,
            timeout=240,
            what="System 2 subtasks and System 1 chunks",
        )
        runtime.abort(record.id)
        final = runtime.wait(record.id, timeout=60)
        status = runtime.status()
        seen = events.drain()
    assert final.state is TaskState.ABORTED and final.reason == "aborted by operator"
    assert final.outcome == "aborted" and final.ended_at is not None
    assert final.subtasks and all(s.source is SubtaskSource.POLICY for s in final.subtasks)
    states = [e.data["state"] for e in seen if e.kind == "task_state" and e.task_id == record.id]
    assert states[0] == "queued" and "running" in states and states[-1] == "aborted"
    chunk_events = chunks_seen(seen)
    assert len(chunk_events) >= 4 and status["executed_actions"] > 0
    assert {e.data["subtask"] for e in chunk_events} <= {s.text for s in final.subtasks}
    assert all(e.data["horizon"] == 50 and e.data["action_dim"] == 12 for e in chunk_events)
    assert any(e.data["rtc_delay"] > 0 for e in chunk_events[1:])  # continuations carry the RTC delay
    assert [e.data["text"] for e in seen if e.kind == "subtask"] == [s.text for s in final.subtasks]
    episodes = [e for e in seen if e.kind == "episode"]
    assert [e.data["phase"] for e in episodes] == ["started", "finished"]
    _reader, info = read_episode(final.episode_path, final.episode_index)
    assert info.length == status["executed_actions"]  # every executed tick recorded, hold ticks are not
    assert info.outcome == "aborted"


def test_coaching_changes_the_subtask_within_one_tick_and_is_recorded_as_relabel(
    sim_robot, worker_url, tmp_path
) -> None:
    with make_runtime(sim_robot, worker_url, tmp_path, every_k_chunks=2) as (runtime, events, _):
        record = runtime.submit(TASK)
        wait_until(lambda: runtime.status()["chunks"] >= 2, timeout=240, what="chunks before coaching")
        tick_before = runtime.status()["tick"]
        applied = runtime.coach(record.id, "Pick up the can!")
        seen_so_far: list = []

        def collect() -> list:
            seen_so_far.extend(events.drain())
            return seen_so_far

        assert applied["tick"] <= tick_before + 1  # applied at the next control tick at the latest
        assert applied["subtask"] == "pick up the can"
        assert runtime.status()["subtask"] == "pick up the can" and runtime.status()["subtask_source"] == "coach"
        wait_until(
            lambda: any(e.kind == "chunk" and e.data["subtask"] == "pick up the can" for e in collect()),
            timeout=400,
            what="a chunk for the coached subtask",
        )
        assert runtime.status()["subtask"] == "pick up the can"  # System 2 does not take over by itself
        handed_back = runtime.coach(record.id, "back to you")
        assert handed_back["kind"] == "release" and handed_back["released"]
        assert runtime.status()["subtask_source"] == "policy"  # System 2's opinion is back in force
        runtime.abort(record.id)
        final = runtime.wait(record.id, timeout=60)
        seen = collect()
    assert final.state is TaskState.ABORTED
    # the low level received only the coached subtask for every chunk requested from that tick on
    coach_event = next(e for e in seen if e.kind == "coaching" and e.data["action"] == "override")
    released = next(e for e in seen if e.kind == "coaching" and e.data["action"] == "released")
    after = [e.data for e in chunks_seen(seen) if applied["tick"] <= e.data["request_tick"] < released.data["tick"]]
    assert after and all(c["subtask"] == "pick up the can" for c in after)
    assert applied["predicted"]  # System 2's subtask at the moment the coach spoke
    relabel = f"Policy: {applied['predicted']} → Relabeled: pick up the can"
    assert applied["relabel"] == relabel
    assert coach_event.data["relabel"] == relabel
    assert [s.source for s in final.subtasks].count(SubtaskSource.COACH) == 1
    _reader, info = read_episode(final.episode_path, final.episode_index)
    interjections = [e for e in info.events if e["kind"] == "interjection"]
    assert [e["text"] for e in interjections] == [relabel]
    assert any(s["text"] == "pick up the can" and s["source"] == "coach" for s in info.subtasks)


def test_operator_controls_pause_resume_change_estop_and_queue(sim_robot, worker_url, tmp_path) -> None:
    with make_runtime(sim_robot, worker_url, tmp_path, system2=CoachOnlySystem2()) as (runtime, events, _):
        first = runtime.submit(TASK)
        second = runtime.submit("put the fruit in the bowl")
        assert runtime.task(second.id).state is TaskState.QUEUED
        # coach-only: the task waits (paused, visible reason) until a coach gives a subtask
        paused = runtime.wait(first.id, 120, states={TaskState.PAUSED})
        assert "coach" in paused.reason
        runtime.coach(first.id, "pick up the can")
        runtime.wait(first.id, 120, states={TaskState.RUNNING})
        wait_until(lambda: runtime.status()["executed_actions"] > 5, timeout=240, what="motion")

        runtime.pause(first.id)
        assert runtime.task(first.id).state is TaskState.PAUSED
        assert runtime.task(first.id).reason == "paused by operator"
        executed, tick = runtime.status()["executed_actions"], runtime.status()["tick"]
        wait_until(lambda: runtime.status()["tick"] >= tick + 10, timeout=120, what="ticks while paused")
        assert runtime.status()["executed_actions"] == executed  # held still: no policy action executed
        runtime.resume(first.id)
        assert runtime.task(first.id).state is TaskState.RUNNING
        wait_until(lambda: runtime.status()["executed_actions"] > executed, timeout=240, what="motion resumes")

        # a new task whose goal does not already hold in this scene (the milk often starts on the shelf, and a
        # task whose success check already holds rightly ends as succeeded before the e-stop below)
        changed = runtime.change_task(first.id, "put the cup in the sink")
        assert changed.text == "put the cup in the sink"
        with pytest.raises(RuntimeCommandError, match="not the active task"):
            runtime.pause(second.id)

        runtime.estop("test e-stop")
        assert runtime.wait(first.id, 30, states={TaskState.PAUSED}).reason == "e-stop: test e-stop"
        assert runtime.robot.estopped
        assert runtime.task(second.id).state is TaskState.QUEUED  # nothing starts while e-stopped
        runtime.reset_estop()
        runtime.resume(first.id)  # after an e-stop only an operator sets the robot going again
        runtime.abort(first.id)
        stopped = runtime.wait(first.id, 30)
        runtime.wait(second.id, 30, states={TaskState.PAUSED, TaskState.RUNNING})
        runtime.abort(second.id)
        assert runtime.wait(second.id, 30).state is TaskState.ABORTED
        seen = events.drain()
    _reader, info = read_episode(stopped.episode_path, stopped.episode_index)
    kinds = [e["kind"] for e in info.events]
    assert {"interjection", "pause", "resume", "task_change", "estop"} <= set(kinds)
    assert info.outcome == "aborted"
    assert any(e.kind == "safety" and e.data["kind"] == "estop" for e in seen)


def test_openai_system2_drives_the_task_to_done(sim_robot, worker_url, tmp_path) -> None:
    state = RuleServer(plans={TASK: ["pick up the can", "put the can in the sink"]})
    with (
        serve_rules(state) as url,
        make_runtime(
            sim_robot, worker_url, tmp_path, system2=OpenAISystem2(url, "rules", timeout_s=5), every_k_chunks=1
        ) as (runtime, _events, _),
    ):
        record = runtime.submit(TASK)
        final = runtime.wait(record.id, timeout=400)
    assert [s.text for s in final.subtasks] == ["pick up the can", "put the can in the sink"]
    # System 2 said done; the sim's success check disagrees (random weights), so the outcome is failed
    assert final.state is TaskState.FAILED and "success check" in final.reason
    assert state.image_shapes and state.image_shapes[0] == (32, 32, 3)


def test_openai_system2_on_a_dead_port_is_a_clear_error_event(sim_robot, worker_url, tmp_path) -> None:
    port = free_port()
    backend = OpenAISystem2(f"http://127.0.0.1:{port}/v1", "m", timeout_s=1, retries=0)
    with make_runtime(sim_robot, worker_url, tmp_path, system2=backend, record=False) as (runtime, events, _):
        record = runtime.submit(TASK)
        paused = runtime.wait(record.id, 120, states={TaskState.PAUSED})
        error = wait_until(lambda: next((e for e in events.drain() if e.kind == "error"), None), timeout=120)
        runtime.abort(record.id)
    assert error.data["source"] == "system2"
    assert f"127.0.0.1:{port}" in error.data["message"] and "cannot connect" in error.data["message"]
    assert "System 2 unavailable" in paused.reason
