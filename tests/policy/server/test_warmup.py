"""The worker warms the model up (on CUDA: captures the fast path's graphs) before it reports healthy."""

from __future__ import annotations

import asyncio
import http.client
import threading
from typing import Any

import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from policy.server import PolicyServer
from tests.support import wait_until

from .conftest import ACTION_DIM, hearth_request


class WarmingPolicy:
    """The real tiny policy whose warm-up waits for the test (or fails)."""

    def __init__(self, policy: Any, fail: bool = False):
        self.policy, self.fail = policy, fail
        self.metadata = policy.metadata
        self.release = threading.Event()

    def warmup(self, max_batch: int | None = None) -> float:
        if self.fail:
            raise RuntimeError("out of GPU memory while capturing")
        assert self.release.wait(timeout=30), "test never released the warm-up"
        self.max_batch = max_batch
        return self.policy.warmup(max_batch)

    def act_batch(self, *args: Any, **kwargs: Any) -> Any:
        return self.policy.act_batch(*args, **kwargs)


def _status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_healthy_and_serving_only_after_warmup(tiny_policy) -> None:
    policy = WarmingPolicy(tiny_policy)
    srv = PolicyServer(policy, port=0, max_batch=3)  # type: ignore[arg-type]
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve()), daemon=True)
    thread.start()
    try:
        wait_until(lambda: srv._bound_port is not None, timeout=30, what="the socket to be bound")
        port = srv.bound_port
        assert _status(port, "/healthz") == 503
        with pytest.raises(InvalidStatus):
            connect(f"ws://127.0.0.1:{port}", open_timeout=10)
        policy.release.set()
        wait_until(lambda: _status(port, "/healthz") == 200, timeout=30, what="the worker to report healthy")
        assert policy.max_batch == 3  # buckets above the worker's batch limit are not captured
        client = WebsocketClientPolicy("127.0.0.1", port)
        try:
            assert client.infer(hearth_request(srv.metadata))["actions"].shape[1] == ACTION_DIM
        finally:
            client._ws.close()
    finally:
        policy.release.set()
        srv.stop()
        thread.join(timeout=30)


def test_failed_warmup_stops_the_worker(tiny_policy) -> None:
    srv = PolicyServer(WarmingPolicy(tiny_policy, fail=True), port=0)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="warm-up failed: out of GPU memory"):
        asyncio.run(srv.serve())
