"""System 1 off the control thread: the worker connections, their background callers, and typed replies.

One caller (and one worker connection) per request that may be in flight at once: a connection serves one request
at a time, and overlapping requests are what keeps delays over half a chunk from stalling the robot (RTC). Every
reply comes back as a typed dataclass on one queue, so the control thread collects all of them with one poll and
never waits on the network. A chunk gets its id here, once, when it arrives; the executor, the recorder and the
events all use that id.

A reply is checked before anyone can execute it: a worker whose metadata does not fit the robot (agent/compat.py)
or a chunk with the wrong number of action dimensions is a permanent failure, never motion.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass

from agent.compat import PolicyMismatchError, check_policy_fits_robot
from agent.executor import BackgroundCaller, CallResult, ChunkRequest
from agent.protocols import ChunkSource, CloneableChunkSource, DescribedChunkSource
from policy.client import PolicyClient
from policy.types import ActionChunk
from robots.types import Observation, RobotDescription

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkArrived:
    request: ChunkRequest
    chunk: ActionChunk
    chunk_id: int
    timing: dict[str, float]
    latency_s: float


@dataclass(frozen=True)
class ChunkFailed:
    request: ChunkRequest
    error: BaseException


@dataclass(frozen=True)
class ProbeAnswered:
    healthy: bool


@dataclass(frozen=True)
class WarmupDone:
    error: BaseException | None


System1Reply = ChunkArrived | ChunkFailed | ProbeAnswered | WarmupDone


def _another_connection(policy: ChunkSource) -> ChunkSource | None:
    """A second connection to the same worker, or None when this kind of source cannot open one."""
    if isinstance(policy, CloneableChunkSource):
        return policy.clone()
    if type(policy) is PolicyClient:
        return PolicyClient(
            policy.url, api_key=policy.api_key, timeout_s=policy.timeout_s, episode_id=policy.episode_id
        )
    return None


class ChunkPipeline:
    """Sends chunk requests on idle connections and hands back typed replies; owns the extra connections."""

    def __init__(self, robot_id: str, policy: ChunkSource, description: RobotDescription, max_in_flight: int) -> None:
        self.description = description
        self._connections: list[ChunkSource] = [policy]
        self._owned: list[ChunkSource] = []
        for _ in range(max_in_flight - 1):
            extra = _another_connection(policy)
            if extra is None:
                break
            self._connections.append(extra)
            self._owned.append(extra)
        self._results: queue.Queue[CallResult] = queue.Queue()
        self._callers = [
            BackgroundCaller(f"{robot_id}-system1-{i}", max_pending=1, results=self._results)
            for i in range(len(self._connections))
        ]
        self._source = f"policy worker {policy.url}" if isinstance(policy, PolicyClient) else "the policy"
        self._next_chunk_id = 0

    @property
    def width(self) -> int:
        """How many requests may be in flight at once (one per connection)."""
        return len(self._connections)

    def _idle(self) -> int | None:
        return next((i for i, caller in enumerate(self._callers) if caller.idle), None)

    def _check_fits(self, connection: ChunkSource) -> None:
        """PolicyMismatchError unless the source's metadata fits the robot: a worker's metadata frame, or an
        in-process policy's own (reading a frame may connect, so this runs on a caller thread, never the
        control thread)."""
        if isinstance(connection, DescribedChunkSource):
            check_policy_fits_robot(connection.metadata, self.description, self._source)

    def warm_up(self) -> None:
        """Connect every worker connection and check its metadata before any task's clock runs."""
        for caller, connection in zip(self._callers, self._connections, strict=True):
            if isinstance(connection, DescribedChunkSource):
                caller.submit(WarmupDone, lambda c=connection: self._check_fits(c))

    def request(self, request: ChunkRequest, obs: Observation) -> bool:
        """Send `request` on an idle connection; False when none is idle (the caller retries next tick)."""
        index = self._idle()
        if index is None:
            return False
        connection = self._connections[index]
        subtask, prev, delay = request.subtask, request.prev_chunk, request.delay

        def act() -> tuple[ActionChunk, dict[str, float]]:
            reply = connection.act(obs, subtask, prev_chunk=prev, delay=delay)
            self._check_fits(connection)  # after the call: the metadata of the connection that answered
            if isinstance(reply, ActionChunk):  # an in-process policy (Pi05Policy.act) has no transport timings
                return reply, {}
            return reply

        return self._callers[index].submit(request, act)

    def probe(self) -> bool:
        """Ask the worker's health endpoint (while it is lost); False when no connection is idle."""
        index = self._idle()
        if index is None:
            return False
        return self._callers[index].submit(ProbeAnswered, self._connections[index].healthy)

    def wait(self, timeout: float) -> list[System1Reply]:
        """Replies that arrive within `timeout` (at least one unless it passes), then everything else queued."""
        try:
            first = self._results.get(timeout=timeout)
        except queue.Empty:
            return []
        return [self._typed(first), *self.poll()]

    def poll(self) -> list[System1Reply]:
        replies = []
        while True:
            try:
                replies.append(self._typed(self._results.get_nowait()))
            except queue.Empty:
                return replies

    def _typed(self, result: CallResult) -> System1Reply:
        tag = result.tag
        if tag is WarmupDone:
            return WarmupDone(result.error)
        if tag is ProbeAnswered:
            return ProbeAnswered(result.error is None and bool(result.value))
        request: ChunkRequest = tag
        if result.error is not None:
            return ChunkFailed(request, result.error)
        chunk, timing = result.value
        expected = len(self.description.actions)
        if chunk.action_dim != expected:
            return ChunkFailed(
                request,
                PolicyMismatchError(
                    f"{self._source} returned {chunk.action_dim}-D actions but the robot takes {expected} "
                    f"({', '.join(self.description.action_names)}); wrong checkpoint?"
                ),
            )
        self._next_chunk_id += 1
        return ChunkArrived(request, chunk, self._next_chunk_id, dict(timing or {}), result.elapsed_s)

    def close(self) -> None:
        for caller in self._callers:
            caller.stop(timeout=2.0)
        for connection in self._owned:
            try:
                connection.close()
            except Exception as exc:
                logger.debug("closing an extra policy connection failed: %s", exc)
        self._owned = []
