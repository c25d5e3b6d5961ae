"""Fixtures for the policy-worker tests: the real tiny Pi05Policy (random weights) and a real server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

STATE_DIM = 6
ACTION_DIM = 5
API_KEY = "test-key-7"
TEST_HORIZON = 10


@dataclass
class Obs:
    images: dict[str, np.ndarray]
    state: np.ndarray


def make_obs(metadata: dict[str, Any], seed: int = 0, side: int = 32) -> Obs:
    rng = np.random.default_rng(seed)
    images = {name: rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8) for name in metadata["camera_names"]}
    return Obs(images, rng.normal(size=len(metadata["state_names"])).astype(np.float32))


def hearth_request(
    metadata: dict[str, Any], seed: int = 0, prompt: str = "pick up the cup", side: int = 32
) -> dict[str, Any]:
    obs = make_obs(metadata, seed, side)
    return {"images": obs.images, "state": obs.state, "prompt": prompt}


@pytest.fixture(scope="session")
def tiny_policy():
    from policy.inference import Pi05Policy

    return Pi05Policy.build_random(
        "tiny",
        camera_names=("head", "wrist"),
        state_names=[f"joint_{i}" for i in range(STATE_DIM)],
        action_names=[f"target_{i}" for i in range(ACTION_DIM)],
        control_hz=20.0,
        seed=0,
        # the real tiny architecture with a shorter chunk and fewer flow steps: 2 shared CPU cores
        action_horizon=TEST_HORIZON,
        num_steps=4,
    )


@pytest.fixture(scope="module")
def server(tiny_policy) -> Iterator[Any]:
    """One authenticated hearth-mapping worker shared by a test module (start-up is not free on 2 cores)."""
    from policy.server import PolicyServer

    srv = PolicyServer(tiny_policy, port=0, api_keys=[API_KEY], max_batch=4, batch_wait_ms=2.0)
    with srv.run_in_thread():
        yield srv


class GatedPolicy:
    """The real tiny policy behind a gate, so a test can hold inference 'in progress' deterministically.

    `entered` is set when a model call starts; the call proceeds only after `release` is set.
    """

    def __init__(self, policy: Any):
        self.policy = policy
        self.metadata = policy.metadata
        self.entered = threading.Event()
        self.release = threading.Event()

    def _wait(self) -> None:
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise TimeoutError("test never released the gate")

    def warmup(self, max_batch: int | None = None) -> float:
        return self.policy.warmup(max_batch)

    def act_batch(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return self.policy.act_batch(*args, **kwargs)

    def subtask(self, *args: Any, **kwargs: Any) -> str:
        self._wait()
        return self.policy.subtask(*args, **kwargs)
