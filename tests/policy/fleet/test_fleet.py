"""System 1 on a local Ray Serve instance: 2 tiny CPU model replicas behind one WebSocket address.

Real Ray, real Serve, the real `openpi-client` and our PolicyClient; every process is real and SIGKILL is real.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
import urllib.request
from typing import Any

import numpy as np
import pytest

from agent.types import TaskState
from tests.policy.fleet.conftest import HORIZON, Fleet, save_tiny
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def observation(metadata: dict[str, Any], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    images = {name: rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for name in metadata["camera_names"]}
    return {
        "images": images,
        "state": rng.normal(size=len(metadata["state_names"])).astype(np.float32),
        "prompt": "pick up the can",
    }


def openpi_client(fleet: Fleet):
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    return WebsocketClientPolicy("127.0.0.1", fleet.port)


def replica_pids(deployment: str) -> dict[str, int]:
    """Serve replica id -> OS pid, for one deployment of the fleet (found by the replicas' actor names)."""
    import ray

    pids = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"]
        if f"#{deployment}#" in name:
            actor = ray.get_actor(name, namespace=entry["namespace"])
            with_pid = ray.get(actor.__ray_call__.remote(lambda _self: os.getpid()), timeout=30)
            pids[name.rsplit("#", 1)[1]] = with_pid
    return pids


def running(deployment: str) -> int:
    from ray import serve

    app = serve.status().applications["hearth-policy"]
    return app.deployments[deployment].replica_states.get("RUNNING", 0)


class Streamer(threading.Thread):
    """A robot-like client: requests chunks back to back, reconnecting after any error, until stopped."""

    def __init__(self, fleet: Fleet, seed: int):
        super().__init__(daemon=True)
        self.fleet, self.seed = fleet, seed
        self.replies: list[tuple[float, dict[str, Any]]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        client = None
        while not self.stop.is_set():
            try:
                client = client or openpi_client(self.fleet)
                reply = client.infer(observation(client.get_server_metadata(), self.seed))
                self.replies.append((time.monotonic(), reply))
            except Exception as exc:
                self.errors.append(repr(exc))
                client = None
                time.sleep(0.2)
        if client is not None:
            client._ws.close()  # openpi-client has no close(); its connection is this attribute


def test_openpi_client_and_policy_client_get_chunks_health_and_metrics(fleet: Fleet) -> None:
    from policy.client import PolicyClient
    from policy.mappings import PolicySpec, WireObservation, get_mapping
    from policy.server import worker_metadata

    expected_metadata = worker_metadata(
        fleet.policy.metadata, get_mapping("hearth", PolicySpec.from_metadata(fleet.policy.metadata))
    )
    client = openpi_client(fleet)
    assert client.get_server_metadata() == expected_metadata
    reply = client.infer(observation(expected_metadata, 0))
    action_dim = len(expected_metadata["action_names"])
    assert reply["actions"].shape == (HORIZON, action_dim) and reply["actions"].dtype == np.float32
    assert np.isfinite(reply["actions"]).all()
    assert reply["hearth/served_by"]["version"] == "tiny-v1"
    assert {"infer_ms", "decode_ms", "queue_ms", "batch_size"} <= set(reply["server_timing"])
    client._ws.close()

    with PolicyClient(fleet.url, timeout_s=60.0) as ours:
        obs = observation(expected_metadata, 1)
        chunk, timing = ours.act(WireObservation(obs["images"], obs["state"]), "pick up the can")
        assert chunk.actions.shape == (HORIZON, action_dim) and np.isfinite(chunk.actions).all()
        assert chunk.action_names == expected_metadata["action_names"] and timing["round_trip_ms"] > 0

    health = urllib.request.urlopen(f"http://127.0.0.1:{fleet.port}/healthz", timeout=30)
    assert health.status == 200 and health.read() == b"OK\n"
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{fleet.port}/metrics", timeout=30).read().decode()
    assert 'hearth_policy_requests_total{kind="act",outcome="ok"}' in metrics


def test_openpi_episode_control_frames_are_acknowledged_as_by_the_plain_worker(fleet: Fleet) -> None:
    """openpi's LIBERO example calls client.episode_start/episode_end; the frames are packed as that client does."""
    from openpi_client import msgpack_numpy

    client = openpi_client(fleet)
    try:
        client._ws.send(client._packer.pack({"__ctrl__": "episode_start", "__experiment__": "x", "__episode_id__": 0}))
        assert msgpack_numpy.unpackb(client._ws.recv()) == {"__ack__": "episode_start"}
        assert client.infer(observation(client.get_server_metadata(), 0))["actions"].shape[0] == HORIZON
    finally:
        client._ws.close()


def test_eight_concurrent_clients_are_spread_over_both_replicas_and_batched(fleet: Fleet) -> None:
    per_client = 6
    served: collections.Counter[str] = collections.Counter()
    batch_sizes: list[float] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def robot(seed: int) -> None:
        try:
            client = openpi_client(fleet)
            metadata = client.get_server_metadata()
            for i in range(per_client):
                reply = client.infer(observation(metadata, seed * 100 + i))
                with lock:
                    served[reply["hearth/served_by"]["replica"]] += 1
                    batch_sizes.append(reply["server_timing"]["batch_size"])
            client._ws.close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=robot, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not failures
    print("chunks per model replica:", dict(served), "largest batch:", max(batch_sizes))
    assert sum(served.values()) == 8 * per_client
    assert set(served) == set(replica_pids("policy-model"))  # both replicas served this address's robots
    assert min(served.values()) >= 1
    assert max(batch_sizes) > 1  # Serve's batching put requests from different robots in one model call


def test_sigkill_of_a_model_replica_mid_stream_is_replaced_and_clients_keep_getting_chunks(fleet: Fleet) -> None:
    before = replica_pids("policy-model")
    assert len(before) == 2
    streamers = [Streamer(fleet, seed) for seed in range(4)]
    for s in streamers:
        s.start()
    try:
        wait_until(lambda: all(len(s.replies) >= 2 for s in streamers), timeout=120, what="chunks before the kill")
        victim, pid = sorted(before.items())[0]
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def replaced() -> set[str] | None:
            if running("policy-model") != 2:
                return None
            ids = set(replica_pids("policy-model"))
            return ids if len(ids) == 2 and ids != set(before) else None

        # polled once a second: asking every replica for its pid is not free on a loaded 2-core machine
        now = wait_until(replaced, timeout=240, interval=1.0, what="Serve to replace the replica")
        replacement = (now - set(before)).pop()

        def served_by_replacement() -> bool:
            return any(
                r["hearth/served_by"]["replica"] == replacement
                for s in streamers
                for t, r in s.replies
                if t > killed_at
            )

        wait_until(
            lambda: served_by_replacement() and all(sum(t > killed_at for t, _ in s.replies) >= 3 for s in streamers),
            timeout=180,
            what="chunks from the replacement replica",
        )
    finally:
        for s in streamers:
            s.stop.set()
        for s in streamers:
            s.join(60)
    after_kill = [r for s in streamers for t, r in s.replies if t > killed_at]
    assert all(r["actions"].shape[0] == HORIZON for r in after_kill)
    assert victim not in {r["hearth/served_by"]["replica"] for r in after_kill[-8:]}
    print("client errors during the kill:", sum(len(s.errors) for s in streamers))


def test_new_checkpoint_rolls_out_without_dropping_a_connection(fleet: Fleet, sim_robot, tmp_path) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    ingress_before = replica_pids("policy-ingress")
    streamer = Streamer(fleet, seed=7)
    streamer.start()
    try:
        wait_until(lambda: len(streamer.replies) >= 2, timeout=120, what="chunks from the old checkpoint")
        checkpoint = tmp_path / "tiny-v2"
        save_tiny(sim_robot.describe(), checkpoint, seed=1)
        # the same command against the running cluster, with the new checkpoint: an in-place (user_config) update
        # (run in this process, which is already connected to the cluster: a second interpreter costs ~15 s here)
        rollout = CliRunner().invoke(app, fleet.args(checkpoint, "--ray-address", "auto")[1:])
        assert rollout.exit_code == 0, rollout.output
        assert "serving tiny-v2" in rollout.output
        wait_until(
            lambda: {r["hearth/served_by"]["version"] for _, r in streamer.replies[-4:]} == {"tiny-v2"},
            timeout=180,
            what="replies from the new checkpoint",
        )
    finally:
        streamer.stop.set()
        streamer.join(60)
    assert streamer.errors == []  # the same connection served old and new checkpoints
    assert replica_pids("policy-ingress") == ingress_before
    versions = [r["hearth/served_by"]["version"] for _, r in streamer.replies]
    assert versions[0] == "tiny-v1" and versions[-1] == "tiny-v2"


def test_robot_under_an_orchestrator_holds_when_the_ingress_dies_and_resumes_its_task(
    fleet: Fleet, sim_robot, tmp_path
) -> None:
    from agent.events import EventBus
    from agent.orchestrator import OrchestratorConfig, RobotRuntime
    from agent.system2 import LocalSystem2
    from policy.client import PolicyClient

    bus = EventBus()
    events = bus.subscribe(maxsize=100_000, kinds={"worker", "task_state"})
    policy, s2 = PolicyClient(fleet.url, timeout_s=60.0), PolicyClient(fleet.url, timeout_s=60.0)
    config = OrchestratorConfig(
        max_task_s=None, idle_observe_hz=0, worker_probe_s=0.2, every_k_chunks=2, worker_late_s=120.0, max_in_flight=1
    )
    runtime = RobotRuntime("kitchen", sim_robot, policy, LocalSystem2(s2), None, bus, config)
    try:
        runtime.start()
        record = runtime.submit("put the can in the sink")
        wait_until(lambda: runtime.status()["chunks"] >= 3, timeout=180, what="chunks through the fleet")
        (ingress_pid,) = replica_pids("policy-ingress").values()
        os.kill(ingress_pid, signal.SIGKILL)
        paused = runtime.wait(record.id, 120, states={TaskState.PAUSED})
        assert "policy worker" in paused.reason
        executed = runtime.status()["executed_actions"]
        runtime.wait(record.id, 180, states={TaskState.RUNNING})
        wait_until(lambda: runtime.status()["executed_actions"] > executed + 5, timeout=180, what="motion again")
        runtime.abort(record.id)
        final = runtime.wait(record.id, 60)
    finally:
        runtime.stop()
        policy.close()
        s2.close()
    assert final.state == TaskState.ABORTED  # the same task ran on: it was never lost or failed
    seen = events.drain()
    statuses = [e.data["status"] for e in seen if e.kind == "worker"]
    assert "lost" in statuses and statuses[-1] == "restored"


def test_serve_config_file_is_valid_for_serve_and_keeps_the_policy_in_user_config(fleet: Fleet, tmp_path) -> None:
    import yaml
    from ray.serve.schema import ServeDeploySchema
    from typer.testing import CliRunner

    from agent.cli import app
    from policy.fleet.app import app_builder

    path = tmp_path / "serve.yaml"
    written = CliRunner().invoke(app, [*fleet.args(fleet.checkpoint, "--write-serve-config", str(path))[1:]])
    assert written.exit_code == 0, written.output
    config = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    (application,) = config.applications
    assert application.import_path == "policy.fleet.app:app_builder" and config.http_options.port == fleet.port
    assert "policy" not in application.args  # a new checkpoint must not change the app's code version
    (model,) = application.deployments
    assert model.user_config["policy"]["checkpoint"] == str(fleet.checkpoint)
    assert app_builder(application.args) is not None
