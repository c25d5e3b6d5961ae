"""The whole system on loopback as real processes, for the console's browser tests.

policy worker (`hearth serve-policy` on a tiny random checkpoint shaped for the sim kitchen) → API with the
simulated robot (`hearth serve-api`) → console (`hearth console`). Each process logs to a file and dies with its
process group at teardown (tests.support.ManagedProcess).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.support import PYTHON, ManagedProcess, free_port, random_policy_for, wait_until

ROBOT_ID = "kitchen"
CAMERA_SIZE = 64
OPERATOR_CAMERA_SIZE = 256  # what people see live and in recordings (the demo's robot config uses the same)
STARTUP_TIMEOUT_S = 240.0


def build_tiny_checkpoint(folder: Path) -> Path:
    """A random `tiny` π₀.₅ checkpoint with the sim kitchen's cameras, state and action names."""
    from robots.registry import make_robot

    robot = make_robot("sim-kitchen", camera_size=CAMERA_SIZE, seed=0)
    try:
        description = robot.describe()
    finally:
        robot.close()
    policy = random_policy_for(description)
    policy.save(folder)
    (folder / "robot.json").write_text(json.dumps({"tasks": description.tasks}))
    return folder


def write_deployment(folder: Path, worker_port: int, api_port: int, orchestrator: dict | None = None) -> Path:
    path = folder / "deployment.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "console-test",
                "robots": [
                    {
                        "id": ROBOT_ID,
                        "kind": "sim-kitchen",
                        "options": {"camera_size": CAMERA_SIZE, "operator_camera_size": OPERATOR_CAMERA_SIZE},
                    }
                ],
                # the checkpoint the worker serves: the API checks task prompts against its token budget
                "policy": {
                    "url": f"ws://127.0.0.1:{worker_port}",
                    "timeout_s": 20,
                    "checkpoint": str(folder / "checkpoint"),
                },
                "system2": {"backend": "local", "every_k_chunks": 2},
                "api": {
                    "host": "127.0.0.1",
                    "port": api_port,
                    "database_url": f"sqlite:///{folder / 'hearth.db'}",
                    "live_max_fps": 15,
                },
                "episodes_dir": str(folder / "episodes"),
                "orchestrator": dict(orchestrator or {}),
            }
        )
    )
    return path


def create_token(database_url: str, role: str) -> str:
    from agent.store import Store

    store = Store(database_url)
    try:
        return store.create_token(f"console-test-{role}", role)[1]
    finally:
        store.close()


@dataclass
class Stack:
    folder: Path
    api_url: str
    console_url: str
    tokens: dict[str, str]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def client(self, role: str = "operator") -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {self.tokens[role]}"}, timeout=30)

    def logs(self) -> str:
        return "\n".join(f"===== {name}\n{p.log_text()[-4000:]}" for name, p in self.processes.items())

    def restart_api(self) -> None:
        """Stop the API (if running) and start it again with the same arguments, port and database."""
        old = self.processes["api"]
        old.stop()
        log = old.log_path.with_name(f"{old.log_path.stem}-restarted{old.log_path.suffix}")
        self.processes["api"] = ManagedProcess(old.args, log, old.env, old.cwd)
        wait_until(
            lambda: (self.check_alive(), _http_ok(f"{self.api_url}/api/v1/health"))[1],
            timeout=STARTUP_TIMEOUT_S,
            what="API healthy again",
        )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if not process.alive():
                raise RuntimeError(f"{name} exited early:\n{process.log_text()[-4000:]}")


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running_stack(folder: Path, with_robot: bool = True, orchestrator: dict | None = None) -> Iterator[Stack]:
    """Start worker, API and console; yield once all three answer; stop them all on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    worker_port, api_port, console_port = free_port(), free_port(), free_port()
    deployment = write_deployment(folder, worker_port, api_port, orchestrator)
    database_url = f"sqlite:///{folder / 'hearth.db'}"
    tokens = {role: create_token(database_url, role) for role in ("operator", "viewer", "automation")}
    api_url = f"http://127.0.0.1:{api_port}"
    stack = Stack(folder, api_url, f"http://127.0.0.1:{console_port}", tokens)
    hearth = [PYTHON, "-m", "agent.cli"]
    env = {"HEARTH_LOG_LEVEL": "INFO", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        # The console first (it needs nothing to start), the checkpoint while it boots, then worker and API
        # (the robot runtime connects to the worker when it starts).
        stack.processes["console"] = ManagedProcess(
            [*hearth, "console", "--api-url", api_url, "--host", "127.0.0.1", "--port", str(console_port)],
            folder / "console.log",
            env,
        )
        if with_robot:
            checkpoint = build_tiny_checkpoint(folder / "checkpoint")
            stack.processes["worker"] = ManagedProcess(
                [
                    *hearth,
                    "serve-policy",
                    "--checkpoint",
                    str(checkpoint),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(worker_port),
                ],
                folder / "worker.log",
                env,
            )
            wait_until(
                lambda: (stack.check_alive(), _http_ok(f"http://127.0.0.1:{worker_port}/healthz"))[1],
                timeout=STARTUP_TIMEOUT_S,
                what="policy worker healthy",
            )
        api_args = [*hearth, "serve-api", "--deployment", str(deployment)] + ([] if with_robot else ["--no-robots"])
        stack.processes["api"] = ManagedProcess(api_args, folder / "api.log", env)
        wait_until(
            lambda: (stack.check_alive(), _http_ok(f"{api_url}/api/v1/health"))[1],
            timeout=STARTUP_TIMEOUT_S,
            what="API healthy",
        )
        wait_until(
            lambda: (stack.check_alive(), _http_ok(f"{stack.console_url}/_stcore/health"))[1],
            timeout=STARTUP_TIMEOUT_S,
            what="console healthy",
        )
        yield stack
    finally:
        for process in reversed(list(stack.processes.values())):
            process.stop()
