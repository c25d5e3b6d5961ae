"""Control-loop benchmark: achieved rate, tick lateness and empty ticks under injected inference delay.

Runs the real RobotRuntime on the simulated kitchen with the real policy worker (`hearth serve-policy`
in its own process, tiny random π₀.₅, WebSocket on loopback). The chunk request is padded with sleep so each reply takes at least
`fraction × chunk duration` (0, 25 %, 50 % of a 50-step chunk by default), which is what a slow GPU or a
long network path looks like to the executor. System 2 is coach-only with one fixed subtask so it does
not compete for the CPU.

Reported per delay:
  achieved_hz      control ticks per second while the task ran
  p50/p99 late ms  how late each tick started against its schedule
  empty ticks      ticks with no action ready after motion started ("starved"; RTC's job is to keep it 0)
  chunks, delay    chunks executed and the measured delay in ticks (max of the buffer)

    MUJOCO_GL=egl .venv/bin/python benchmarks/control_loop.py --seconds 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


class InjectedDelay:
    """Wraps a PolicyClient so that every chunk takes at least `delay_s` (the reply is held back)."""

    def __init__(self, client, delay_s: float) -> None:
        self.client = client
        self.delay_s = delay_s

    def act(self, obs, prompt, prev_chunk=None, delay=0):
        started = time.monotonic()
        result = self.client.act(obs, prompt, prev_chunk=prev_chunk, delay=delay)
        remaining = self.delay_s - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)
        return result

    def clone(self) -> InjectedDelay:
        """A second connection with the same injected delay (the runtime overlaps requests on several)."""
        from policy.client import PolicyClient

        return InjectedDelay(PolicyClient(self.client.url, timeout_s=self.client.timeout_s), self.delay_s)

    def close(self) -> None:
        self.client.close()

    def subtask(self, obs, task):
        return self.client.subtask(obs, task)

    def healthy(self) -> bool:
        return self.client.healthy()


def run_one(robot, url: str, fraction: float, seconds: float, camera_size: int, render: bool = True) -> dict:
    from agent.events import EventBus
    from agent.orchestrator import OrchestratorConfig, RobotRuntime
    from agent.system2 import CoachOnlySystem2
    from agent.types import TaskState
    from policy.client import PolicyClient

    description = robot.describe()
    horizon = 50
    delay_s = fraction * horizon / description.control_hz
    client = PolicyClient(url, timeout_s=30.0)
    policy = InjectedDelay(client, delay_s)
    config = OrchestratorConfig(max_task_s=seconds + 60, idle_observe_hz=0, worker_late_s=30.0)
    runtime = RobotRuntime("bench", robot, policy, CoachOnlySystem2(), None, EventBus(), config)
    runtime.start()
    try:
        record = runtime.submit(description.tasks[0] if description.tasks else "put the can in the sink")
        runtime.wait(record.id, 60, states={TaskState.PAUSED})  # coach-only: waits for a coach
        runtime.coach(record.id, "pick up the can")
        deadline = time.monotonic() + 120
        while runtime.status()["executed_actions"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        start_status, start = runtime.status(), time.monotonic()
        runtime.reset_timing()
        time.sleep(seconds)
        end_status, elapsed = runtime.status(), time.monotonic() - start
        lateness = sorted(runtime.lateness_samples())
        work = sorted(runtime.tick_work_samples())
        runtime.abort(record.id)
    finally:
        runtime.stop()
        client.close()
    ticks = end_status["tick"] - start_status["tick"]

    def pct(q: float, samples: list[float] | None = None) -> float:
        samples = lateness if samples is None else samples
        return round(1000 * samples[min(len(samples) - 1, int(q * (len(samples) - 1)))], 1) if samples else 0.0

    return {
        "delay_fraction": fraction,
        "injected_delay_ms": round(1000 * delay_s),
        "target_hz": description.control_hz,
        "achieved_hz": round(ticks / elapsed, 2),
        "p50_late_ms": pct(0.5),
        "p99_late_ms": pct(0.99),
        "p50_tick_work_ms": pct(0.5, work),
        "p99_tick_work_ms": pct(0.99, work),
        "ticks": ticks,
        "empty_ticks": end_status["starved_ticks"] - start_status["starved_ticks"],
        "chunks": end_status["chunks"] - start_status["chunks"],
        "delay_estimate_ticks": end_status["delay_estimate_ticks"],
        "camera_size": camera_size,
        "render": render,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per delay setting")
    parser.add_argument("--fractions", default="0,0.25,0.5", help="injected delay as fractions of a chunk")
    parser.add_argument("--camera-size", type=int, default=32)
    parser.add_argument(
        "--no-render", action="store_true", help="blank camera images (isolates the loop from rendering)"
    )
    parser.add_argument("--worker", default=None, help="use this worker URL instead of starting one")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()

    from robots.registry import make_robot

    robot = make_robot("sim-kitchen", camera_size=args.camera_size, seed=0, render=not args.no_render)
    with contextlib.ExitStack() as stack:
        url = args.worker or stack.enter_context(_worker_process(robot.describe()))
        for fraction in (float(f) for f in args.fractions.split(",")):
            row = run_one(robot, url, fraction, args.seconds, args.camera_size, not args.no_render)
            print(
                json.dumps(row)
                if args.json
                else f"delay {row['delay_fraction']:>4.0%} ({row['injected_delay_ms']:>4} ms): "
                f"{row['achieved_hz']:5.2f} Hz of {row['target_hz']:g}, p50 late {row['p50_late_ms']} ms, "
                f"p99 late {row['p99_late_ms']} ms, tick work p50/p99 {row['p50_tick_work_ms']}/{row['p99_tick_work_ms']} ms, "
                f"empty ticks {row['empty_ticks']} / {row['ticks']}, "
                f"chunks {row['chunks']}, delay estimate {row['delay_estimate_ticks']} ticks",
                flush=True,
            )
    robot.close()


@contextlib.contextmanager
def _worker_process(description):
    """`hearth serve-policy` in its own process (as deployed), serving random tiny weights shaped for the robot."""
    from policy.inference import Pi05Policy

    policy = Pi05Policy.build_random_for(description, "tiny", seed=0)
    with tempfile.TemporaryDirectory() as folder:
        policy.save(Path(folder) / "tiny")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        hearth = str(Path(sys.executable).parent / "hearth")
        log = open(Path(folder) / "worker.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [hearth, "serve-policy", "--checkpoint", str(Path(folder) / "tiny"), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((Path(folder) / "worker.log").read_text()) from None
                    time.sleep(0.2)
            yield f"ws://127.0.0.1:{port}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main()
