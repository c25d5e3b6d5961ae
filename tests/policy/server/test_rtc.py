"""Real-time chunking through the worker: a continuation replays the previous chunk's leftover, without a seam jump.

Setup as the executor uses it: chunk A arrives; after `executed` ticks the robot asks for the next chunk and
sends A's unexecuted rest (`leftover`) plus the measured delay d; while the request is in flight the robot
runs leftover[:d]; then it switches to the continuation B at index d. So:
- B[:d] must replay leftover[:d] (those actions happen regardless), measured against how far an unguided
  fresh chunk is from them;
- the seam step B[d] - leftover[d-1] must be a normal step: no larger than the steps inside the chunks.
The random tiny model's chunks are rough (every internal step is large), so every tolerance is measured
relative to the chunks' own internal step sizes. Noise comes from a fixed torch seed.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from policy.client import PolicyClient
from policy.server import PolicyServer

from .conftest import API_KEY, TEST_HORIZON, make_obs

EXECUTED = 3  # ticks of chunk A run before the next request goes out


def _steps(chunk: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(chunk, axis=0), axis=1)


@pytest.mark.parametrize("delay", [2, 4])
def test_continuation_replays_the_leftover_and_the_seam_is_a_normal_step(server: PolicyServer, delay: int) -> None:
    torch.manual_seed(delay)
    with PolicyClient(f"ws://127.0.0.1:{server.bound_port}", api_key=API_KEY, timeout_s=120) as client:
        obs = make_obs(client.metadata, seed=11)
        first, _ = client.act(obs, "pick up the cup")
        leftover = first.actions[EXECUTED:]
        continuation, timing = client.act(obs, "pick up the cup", prev_chunk=leftover, delay=delay)
        fresh, _ = client.act(obs, "pick up the cup")  # what a naive (unguided) switch would execute
    a, b, f = first.actions, continuation.actions, fresh.actions
    assert b.shape == a.shape == (TEST_HORIZON, a.shape[1])
    typical_step = float(np.median(np.concatenate([_steps(a), _steps(b)])))
    largest_step = float(np.max(np.concatenate([_steps(a), _steps(b)])))

    # 1. The frozen prefix: B[:d] replays leftover[:d] far more closely than an unguided chunk does,
    #    and within 15 % of one normal step (per action, Euclidean over all dims).
    prefix_error = np.linalg.norm(b[:delay] - leftover[:delay], axis=1)
    naive_prefix_error = np.linalg.norm(f[:delay] - leftover[:delay], axis=1)
    print(
        f"d={delay} typical step {typical_step:.3f} largest {largest_step:.3f} prefix error max "
        f"{prefix_error.max():.3f} (unguided {naive_prefix_error.max():.3f})"
    )
    assert prefix_error.max() <= 0.15 * typical_step
    assert prefix_error.mean() <= 0.1 * naive_prefix_error.mean()

    # 2. The seam: switching from leftover[d-1] to B[d] is a step like the ones the old chunk had planned.
    seam = float(np.linalg.norm(b[delay] - leftover[delay - 1]))
    planned = float(np.linalg.norm(leftover[delay] - leftover[delay - 1]))
    print(f"d={delay} seam step {seam:.3f}, planned step there {planned:.3f}")
    assert seam <= largest_step
    assert abs(seam - planned) <= 0.25 * typical_step
    assert timing["policy_infer_ms"] > 0


def test_rtc_and_plain_requests_share_one_batch(tiny_policy) -> None:
    """A continuation request batched with a plain one: each gets what it asked for."""
    from policy.mappings import PolicyRequest, WireObservation
    from policy.metrics import WorkerMetrics
    from policy.server import InferenceBatcher

    torch.manual_seed(5)
    obs = make_obs(tiny_policy.metadata, seed=4)
    observation = WireObservation(obs.images, obs.state)
    previous = tiny_policy.act(observation, "open the drawer").actions
    leftover = previous[EXECUTED:]
    metrics = WorkerMetrics()
    batcher = InferenceBatcher(tiny_policy, max_batch=2, batch_wait_s=0.5, metrics=metrics)

    async def scenario() -> list:
        rtc = batcher.submit(PolicyRequest("act", observation, "open the drawer", prev_chunk=leftover, delay=2))
        plain = batcher.submit(PolicyRequest("act", observation, "open the drawer"))
        batcher.start()
        return await asyncio.wait_for(asyncio.gather(rtc, plain), timeout=120)

    try:
        rtc_result, plain_result = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert rtc_result.batch_size == plain_result.batch_size == 2
    typical_step = float(np.median(_steps(previous)))
    rtc_error = np.linalg.norm(rtc_result.actions[:2] - leftover[:2], axis=1).max()
    plain_error = np.linalg.norm(plain_result.actions[:2] - leftover[:2], axis=1).max()
    assert rtc_error <= 0.15 * typical_step < plain_error
