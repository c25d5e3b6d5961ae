"""A real worker process killed with SIGKILL mid-task: the robot holds, the task pauses, nothing recorded is lost,
and the task resumes by itself once the worker is back on the same port."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from agent.events import EventBus
from agent.orchestrator import OrchestratorConfig, RobotRuntime
from agent.system2 import LocalSystem2
from agent.types import TaskState
from tests.support import free_port, spawn, wait_for_port, wait_until

HEARTH = str(Path(sys.executable).parent / "hearth")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_worker_sigkill_pauses_holds_and_resumes(sim_robot, tiny_policy, tmp_path) -> None:
    from agent.recorder import EpisodeRecorder
    from policy.client import PolicyClient
    from policy.data.reader import LeRobotDatasetReader

    checkpoint = tmp_path / "tiny"
    tiny_policy.save(checkpoint)
    port = free_port()
    args = [HEARTH, "serve-policy", "--checkpoint", str(checkpoint), "--port", str(port), "--host", "127.0.0.1"]
    url = f"ws://127.0.0.1:{port}"
    bus = EventBus()
    events = bus.subscribe(maxsize=100_000, kinds={"worker", "task_state", "error"})
    recorder = EpisodeRecorder(tmp_path / "episodes", sim_robot.describe())
    # a dead worker is noticed at once (connection reset), so a generous timeout only absorbs a loaded CPU
    policy, s2 = PolicyClient(url, timeout_s=60.0), PolicyClient(url, timeout_s=60.0)
    config = OrchestratorConfig(
        max_task_s=None, idle_observe_hz=0, worker_probe_s=0.2, every_k_chunks=2, worker_late_s=120.0, max_in_flight=1
    )
    runtime = RobotRuntime("kitchen", sim_robot, policy, LocalSystem2(s2), recorder, bus, config)
    try:
        with spawn(args, tmp_path / "worker1.log") as worker:
            wait_for_port(port, timeout=240)
            runtime.start()
            record = runtime.submit("put the can in the sink")
            wait_until(lambda: runtime.status()["chunks"] >= 3, timeout=300, what="chunks from the worker")
            worker.signal_group(signal.SIGKILL)
            worker.popen.wait(timeout=10)
            paused = runtime.wait(record.id, 120, states={TaskState.PAUSED})
            assert "policy worker" in paused.reason
            executed, tick = runtime.status()["executed_actions"], runtime.status()["tick"]
            wait_until(
                lambda: runtime.status()["tick"] >= tick + 10, timeout=120, what="ticks while the worker is down"
            )
            assert runtime.status()["executed_actions"] == executed  # held still
            assert runtime.status()["worker"] == "lost"
        with spawn(args, tmp_path / "worker2.log"):
            runtime.wait(record.id, 300, states={TaskState.RUNNING})
            wait_until(lambda: runtime.status()["executed_actions"] > executed + 5, timeout=300, what="motion again")
            runtime.abort(record.id)
            final = runtime.wait(record.id, 60)
            total = runtime.status()["executed_actions"]
    finally:
        runtime.stop()
        recorder.close()
        policy.close()
        s2.close()
    seen = events.drain()
    statuses = [e.data["status"] for e in seen if e.kind == "worker"]
    assert "lost" in statuses and statuses[-1] == "restored"
    states = [e.data["state"] for e in seen if e.kind == "task_state"]
    assert states[-3:] == ["paused", "running", "aborted"] or ("paused" in states and states[-1] == "aborted")
    reader = LeRobotDatasetReader(final.episode_path)
    info = next(e for e in reader.episodes if e.index == final.episode_index)
    assert info.length == total  # frames from before the kill and after the restart are all there
    kinds = [e["kind"] for e in info.events]
    assert "pause" in kinds and "resume" in kinds
