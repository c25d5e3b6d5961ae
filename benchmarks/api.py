"""API benchmark: REST latency under 50 concurrent clients and live-stream fan-out to 1, 5 and 20 viewers.

The API (with a real RobotRuntime on the simulated kitchen) and the policy worker (tiny random π₀.₅) run in two
child processes, as deployed, so neither shares an interpreter with the load generator. The REST load is a mix of reads
that touch the store (task list, one task) and the runtime (robot status). Fan-out runs while a task is
executing, so the robot produces new frames at its control rate; viewers ask for the maximum frame rate.

    MUJOCO_GL=egl .venv/bin/python benchmarks/api.py [--seconds 10] [--clients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TASK = "put the can in the sink"


def tiny_policy_for_sim():
    from policy.inference import Pi05Policy
    from robots.registry import make_robot

    robot = make_robot("sim-kitchen", camera_size=96, seed=0)
    description = robot.describe()
    policy = Pi05Policy.build_random_for(description, "tiny", seed=0)
    return robot, policy


def serve_worker(port: int) -> None:
    """Child process: the policy worker (tiny random π₀.₅), as in a real deployment a process of its own."""
    from policy.server import PolicyServer

    robot, policy = tiny_policy_for_sim()
    robot.close()
    with PolicyServer(policy, host="127.0.0.1", port=port).run_in_thread():
        while True:
            time.sleep(3600)


def serve(port: int, database: str, episodes: str, max_fps: float, worker_url: str) -> None:
    """Child process: robot runtime + API on 127.0.0.1:port until killed."""
    import uvicorn

    from agent.api.app import create_app
    from agent.events import EventBus
    from agent.orchestrator import OrchestratorConfig, RobotRuntime
    from agent.settings import ApiConfig
    from agent.system2 import LocalSystem2
    from policy.client import PolicyClient
    from robots.registry import make_robot

    EpisodeRecorder = importlib.import_module("agent.recorder").EpisodeRecorder
    robot = make_robot("sim-kitchen", camera_size=96, seed=0)
    bus = EventBus()
    runtime = RobotRuntime(
        "kitchen",
        robot,
        PolicyClient(worker_url, timeout_s=30),
        LocalSystem2(PolicyClient(worker_url, timeout_s=30)),
        EpisodeRecorder(Path(episodes), robot.describe()),
        bus,
        OrchestratorConfig(max_task_s=3600, idle_observe_hz=2, worker_late_s=60),
    )
    config = ApiConfig(database_url=database, task_rate_limit_per_minute=10_000, live_max_fps=max_fps)
    app = create_app(config, runtimes={"kitchen": runtime}, bus=bus, manage_runtimes=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")


async def rest_load(base: str, token: str, clients: int, seconds: float, task_id: str) -> dict[str, float]:
    import httpx

    paths = ["/api/v1/tasks?limit=20", f"/api/v1/tasks/{task_id}", "/api/v1/robots/kitchen/status", "/api/v1/health"]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=30
    ) as client:

        async def one_client(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - started)
                errors += response.status_code >= 400
                i += 1

        await asyncio.gather(*(one_client(i) for i in range(clients)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "errors": errors,
    }


async def fan_out(ws_base: str, token: str, viewers: int, seconds: float, fps: float, size: int) -> dict[str, float]:
    from websockets.asyncio.client import connect

    counts = [0] * viewers
    url = f"{ws_base}/api/v1/robots/kitchen/live?token={token}&fps={fps}&size={size}&streams=frames"

    async def viewer(i: int) -> None:
        async with connect(url, max_size=None) as ws:
            deadline = time.perf_counter() + seconds
            while (remaining := deadline - time.perf_counter()) > 0:
                try:
                    message = await asyncio.wait_for(ws.recv(), remaining)
                except TimeoutError:
                    break
                if json.loads(message)["type"] == "frame":
                    counts[i] += 1

    await asyncio.gather(*(viewer(i) for i in range(viewers)))
    per_viewer = [c / seconds for c in counts]
    return {
        "viewers": viewers,
        "total_fps": sum(per_viewer),
        "per_viewer_fps": statistics.fmean(per_viewer),
        "min_viewer_fps": min(per_viewer),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-url", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--episodes", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate each viewer asks for")
    parser.add_argument("--size", type=int, default=96, help="frame size (longest side, px)")
    args = parser.parse_args()
    if args.worker:
        serve_worker(args.worker)
        return
    if args.serve:
        serve(args.serve, args.database, args.episodes, args.fps, args.worker_url)
        return

    from agent.store import Store
    from tests.support import free_port, spawn, wait_for_port

    os.environ.setdefault("MUJOCO_GL", "egl")
    workdir = Path(tempfile.mkdtemp(prefix="hearth-bench-api-"))
    database = f"sqlite:///{workdir / 'hearth.db'}"
    store = Store(database)
    token = store.create_token("bench", "admin")[1]
    store.close()
    port, worker_port = free_port(), free_port()
    command = [
        sys.executable,
        __file__,
        "--serve",
        str(port),
        "--database",
        database,
        "--episodes",
        str(workdir / "episodes"),
        "--fps",
        str(args.fps),
        "--worker-url",
        f"ws://127.0.0.1:{worker_port}",
    ]
    worker_command = [sys.executable, __file__, "--worker", str(worker_port)]
    with spawn(worker_command, workdir / "worker.log") as worker:
        wait_for_port(worker_port, timeout=300)
        assert worker.alive(), worker.log_text()[-2000:]
        run_load(args, command, workdir, port, token)


def run_load(args: argparse.Namespace, command: list[str], workdir: Path, port: int, token: str) -> None:
    import httpx

    from tests.support import spawn, wait_until

    with spawn(command, workdir / "server.log") as server:
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

        def up() -> bool:
            assert server.alive(), server.log_text()[-2000:]
            return client.get("/api/v1/health").status_code == 200

        wait_until(up, timeout=300, what="API up")
        print(f"# API benchmark ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before start)")
        idle = asyncio.run(rest_load(base, token, args.clients, args.seconds, "none"))
        print(
            f"REST {args.clients} concurrent clients, robot idle, {args.seconds:.0f}s: {idle['requests']} requests, "
            f"{idle['rps']:.0f} req/s, p50 {idle['p50_ms']:.1f} ms, p99 {idle['p99_ms']:.1f} ms "
            f"(4xx/5xx {idle['errors']}: the task id 'none' is a deliberate 404)"
        )
        task_id = client.post("/api/v1/tasks", json={"robot_id": "kitchen", "text": TASK}).json()["id"]
        wait_until(
            lambda: client.get(f"/api/v1/tasks/{task_id}").json()["state"] == "running",
            timeout=300,
            what="task running",
        )
        rest = asyncio.run(rest_load(base, token, args.clients, args.seconds, task_id))
        print(
            f"REST {args.clients} concurrent clients, robot running a task, {args.seconds:.0f}s: {rest['requests']} requests, "
            f"{rest['rps']:.0f} req/s, p50 {rest['p50_ms']:.1f} ms, p99 {rest['p99_ms']:.1f} ms, "
            f"errors {rest['errors']}"
        )
        for viewers in (1, 5, 20):
            result = asyncio.run(fan_out(f"ws://127.0.0.1:{port}", token, viewers, args.seconds, args.fps, args.size))
            status = client.get("/api/v1/robots/kitchen/status").json()
            print(
                f"live fan-out {viewers:>2} viewers ({args.fps:g} fps asked, {args.size}px, 2 cameras): "
                f"{result['total_fps']:.1f} frames/s total, {result['per_viewer_fps']:.1f} per viewer "
                f"(min {result['min_viewer_fps']:.1f}); control loop {status['achieved_hz']} Hz, "
                f"p99 tick lateness {status['p99_lateness_ms']} ms"
            )
        print(f"# load average after: {os.getloadavg()[0]:.1f}")
        client.close()


if __name__ == "__main__":
    main()
