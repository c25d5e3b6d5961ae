"""The model deployment: one π₀.₅ per replica (one GPU each, or CPU), requests from any robot batched by Serve.

Why the shape of this module:
- Batching is Ray Serve's own (`serve.batch`): requests that reach one replica within `batch_wait_ms` form one
  `act_batch` call of at most `max_batch`; `max_concurrent_batches=1` because one model is not thread-safe and a
  GPU serialises work anyway. The model call runs *on* the replica's event loop, on purpose: run in a worker
  thread, it starves the loop of the GIL (the forward pass is many small Python-level ops) and requests trickle
  into the batch queue one at a time; blocking, they wait in Ray's queue while a batch runs and the next batch
  takes them all (BENCHMARKS.md "Policy fleet": mean batch ~1.2 in a thread, near max_batch blocking). Health
  checks wait at most one batch.
- The policy comes from `user_config` (a PolicySource as a dict), so a new checkpoint is a lightweight Serve
  update: `reconfigure` loads it beside the old one and swaps when ready; requests keep being served meanwhile and
  no replica restarts, so no robot is dropped. A checkpoint for a different robot interface is refused.
- Per-request failures come back as values, not exceptions, so one bad observation in a batch fails alone
  (the batch is retried one by one, as policy/server.py's InferenceBatcher does).
- Every result names the replica and the policy version that produced it: clients and tests can see how load
  spreads and when a rollout has reached them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray import serve
from ray.serve.exceptions import RayServeException

from policy.fleet.config import PolicySource
from policy.mappings import PolicyRequest
from policy.server import InferenceResult
from policy.types import PolicyInputError

logger = logging.getLogger(__name__)

INTERFACE_KEYS = ("camera_names", "state_names", "action_names", "robot_type", "robot_interface_version")


@dataclass
class ReplicaResult:
    """One request's outcome on a model replica: a result, or an error the ingress turns into an error frame."""

    result: InferenceResult | None
    error: str | None = None
    bad_input: bool = False
    replica: str = ""
    version: str = ""


def run_batch(policy: Any, requests: list[PolicyRequest]) -> list[InferenceResult | Exception]:
    """Run act and subtask requests with one model call per kind; on a failed batch, retry each alone."""
    results: list[InferenceResult | Exception] = [RuntimeError("not run")] * len(requests)
    for kind in ("act", "subtask"):
        index = [i for i, r in enumerate(requests) if r.kind == kind]
        if not index:
            continue
        group = [requests[i] for i in index]
        try:
            outcomes: list[InferenceResult | Exception] = list(_call(policy, kind, group))
        except Exception as exc:
            if len(group) == 1:
                outcomes = [exc]
            else:
                logger.warning("batched %s failed (%s); retrying %d requests one by one", kind, exc, len(group))
                outcomes = [run_batch(policy, [r])[0] for r in group]
        for i, outcome in zip(index, outcomes, strict=True):
            results[i] = outcome
    return results


def _call(policy: Any, kind: str, group: list[PolicyRequest]) -> list[InferenceResult]:
    started = time.perf_counter()
    observations = [r.observation for r in group]
    prompts = [r.prompt for r in group]
    if kind == "subtask":
        texts = (
            policy.subtask_batch(observations, prompts)
            if len(group) > 1
            else [policy.subtask(observations[0], prompts[0])]
        )
        model_ms = (time.perf_counter() - started) * 1e3
        return [InferenceResult(subtask=str(t), model_ms=model_ms, batch_size=len(group)) for t in texts]
    if any(r.prev_chunk is not None for r in group):
        chunks = policy.act_batch(
            observations, prompts, prev_chunks=[r.prev_chunk for r in group], delays=[r.delay for r in group]
        )
    else:
        chunks = policy.act_batch(observations, prompts)
    if len(chunks) != len(group):
        raise RuntimeError(f"act_batch returned {len(chunks)} chunks for {len(group)} requests")
    model_ms = (time.perf_counter() - started) * 1e3
    return [
        InferenceResult(
            actions=np.asarray(getattr(c, "actions", c), dtype=np.float32), model_ms=model_ms, batch_size=len(group)
        )
        for c in chunks
    ]


def interface_of(metadata: dict[str, Any]) -> dict[str, Any]:
    """The parts of a policy's metadata a robot depends on; a rollout must not change them."""
    return {k: metadata.get(k) for k in INTERFACE_KEYS}


class PolicyModel:
    """A Serve deployment class (options are set in policy/fleet/app.py): holds one Pi05Policy per replica."""

    def __init__(self, device: str, max_batch: int, batch_wait_ms: float):
        self.device = device
        self.max_batch = max_batch
        self.warmup_s = 0.0
        self.policy: Any = None
        self.source: PolicySource | None = None
        self.version = ""
        self.broken: str | None = None
        self._swap = asyncio.Lock()
        self._infer.set_max_batch_size(max_batch)
        self._infer.set_batch_wait_timeout_s(batch_wait_ms / 1e3)
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except RayServeException:  # built outside a Serve replica (unit tests)
            self.replica = "local"

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Load the PolicySource in `user_config["policy"]`; the old policy serves until the new one is ready.

        "Ready" includes the fast path's warm-up (on CUDA: graph capture for every batch bucket up to this
        replica's max batch): Serve marks a replica running only after its first reconfigure returns, and a
        rollout swaps in the new policy only after it, so no robot's request pays for a capture.
        """
        source = PolicySource.model_validate(user_config["policy"])
        if self.source is not None and source == self.source:
            return
        async with self._swap:
            policy = await asyncio.to_thread(source.build, self.device)
            if self.policy is not None and interface_of(policy.metadata) != interface_of(self.policy.metadata):
                raise ValueError(
                    f"refusing rollout of {source.label}: its robot interface {interface_of(policy.metadata)} differs "
                    f"from the served one {interface_of(self.policy.metadata)}; deploy it as a new application"
                )
            self.warmup_s = await asyncio.to_thread(policy.warmup, self.max_batch)
            self.policy, self.source, self.version = policy, source, source.label
            logger.info("replica %s now serves %s (warm-up %.1f s)", self.replica, self.version, self.warmup_s)

    def metadata(self) -> dict[str, Any]:
        return dict(self.policy.metadata)

    def check_health(self) -> None:
        """Serve calls this every health_check_period_s; raising makes Serve replace the replica."""
        if self.policy is None:
            raise RuntimeError("no policy loaded")
        if self.broken is not None:
            raise RuntimeError(f"replica is broken: {self.broken}")

    async def infer(self, request: PolicyRequest) -> ReplicaResult:
        """One request (from the ingress); Serve groups concurrent calls into one batch."""
        return await self._infer(request)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005, max_concurrent_batches=1)
    async def _infer(self, requests: list[PolicyRequest]) -> list[ReplicaResult]:
        policy, version = self.policy, self.version
        started = time.perf_counter()
        outcomes = run_batch(policy, requests)
        results = []
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                if _fatal(outcome):
                    self.broken = repr(outcome)
                results.append(
                    ReplicaResult(
                        None,
                        f"{type(outcome).__name__}: {outcome}",
                        isinstance(outcome, PolicyInputError),
                        self.replica,
                        version,
                    )
                )
            else:
                outcome.queue_ms = 0.0
                results.append(ReplicaResult(outcome, replica=self.replica, version=version))
        logger.debug("batch of %d in %.1f ms", len(requests), (time.perf_counter() - started) * 1e3)
        return results


def _fatal(exc: Exception) -> bool:
    """Errors after which this replica cannot serve again (the health check then has Serve replace it)."""
    return "CUDA error" in str(exc)  # a device-side fault poisons the CUDA context for this process
