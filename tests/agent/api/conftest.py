"""Shared pieces for API tests: one simulated kitchen, one tiny random π₀.₅ behind the real policy worker, and
`api_stack`, which wires a real RobotRuntime (safety layer, recorder, System 2) to the real app on loopback."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.settings import ApiConfig
from tests.agent.api.support import ServedApp, make_tokens, role_clients
from tests.support import random_policy_for

ROBOT_ID = "kitchen"
TASK = "put the can in the sink"


@pytest.fixture(scope="package")
def sim_robot():
    """One SimKitchen for the package (building it costs seconds); each runtime wraps it in its own SafeRobot."""
    from robots.registry import make_robot

    robot = make_robot("sim-kitchen", camera_size=32, seed=0)
    yield robot
    robot.close()


@pytest.fixture(scope="package")
def tiny_policy(sim_robot):
    return random_policy_for(sim_robot.describe())


@pytest.fixture(scope="package")
def worker_url(tiny_policy) -> Iterator[str]:
    """The real policy worker (WebSocket, msgpack) serving the tiny policy on a loopback port, in a thread."""
    from policy.server import PolicyServer

    server = PolicyServer(tiny_policy, host="127.0.0.1", port=0)
    with server.run_in_thread() as port:
        yield f"ws://127.0.0.1:{port}"


@dataclass
class Stack:
    server: ServedApp
    runtime: Any
    bus: Any
    store: Any
    tokens: dict[str, str]
    clients: dict[str | None, Any]
    episodes_root: Path
    app: Any


@contextlib.contextmanager
def api_stack(
    sim_robot,
    worker_url: str,
    tmp_path: Path,
    start: bool = True,
    record: bool = True,
    api: dict | None = None,
    prompt_budget: Any = None,
    **orchestrator: Any,
) -> Iterator[Stack]:
    """A RobotRuntime on the sim kitchen (started unless start=False) behind the app served on loopback."""
    from agent.api.app import create_app
    from agent.events import EventBus
    from agent.orchestrator import OrchestratorConfig, RobotRuntime
    from agent.store import Store
    from agent.system2 import LocalSystem2
    from policy.client import PolicyClient

    policy = PolicyClient(worker_url, timeout_s=30.0)
    s2_client = PolicyClient(worker_url, timeout_s=30.0)
    episodes_root = tmp_path / "episodes" / ROBOT_ID
    recorder = None
    if record:
        recorder = importlib.import_module("agent.recorder").EpisodeRecorder(episodes_root, sim_robot.describe())
    bus = EventBus()
    orchestrator.setdefault("max_task_s", 120.0)
    orchestrator.setdefault("worker_late_s", 60.0)  # a loaded CI machine can take seconds per tiny-model chunk
    orchestrator.setdefault("idle_observe_hz", 2.0)
    runtime = RobotRuntime(
        ROBOT_ID,
        sim_robot,
        policy,
        LocalSystem2(s2_client),
        recorder,
        bus,
        OrchestratorConfig(**orchestrator),
        prompt_budget=prompt_budget,
    )
    config = ApiConfig(**{"database_url": f"sqlite:///{tmp_path / 'hearth.db'}", **(api or {})})
    store = Store(config.database_url)
    tokens = make_tokens(store)
    app = create_app(
        config,
        runtimes={ROBOT_ID: runtime},
        bus=bus,
        store=store,
        episode_roots={ROBOT_ID: episodes_root},
        webhook_backoff_s=0.05,
    )
    if start:
        runtime.start()
    try:
        with ServedApp(app) as server, role_clients(server.url, tokens) as clients:
            yield Stack(server, runtime, bus, store, tokens, clients, episodes_root, app)
    finally:
        runtime.stop()
        if recorder is not None:
            recorder.close()
        policy.close()
        s2_client.close()
