"""The collaborators of the orchestrator, as Protocols: what the control loop needs from each, nothing more.

Why Protocols and not `Any`: the loop is the one place a robot, a policy worker, System 2 and the recorder meet;
spelling out the calls it makes lets a type checker (and a reader) see that a fake in a benchmark or a bridge to a
real robot fits, without anyone probing attributes at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agent.system2 import System2Backend
from policy.types import ActionChunk
from robots.types import Observation, RobotDescription

__all__ = [
    "ChunkReply",
    "ChunkSource",
    "CloneableChunkSource",
    "ControlledRobot",
    "DescribedChunkSource",
    "EpisodeRecorder",
    "System2Backend",
]

#: What `ChunkSource.act` returns: the chunk and the worker's timing in ms (`PolicyClient.act`'s shape).
ChunkReply = tuple[ActionChunk, dict[str, float]]


class ChunkSource(Protocol):
    """System 1: a policy worker connection that turns (observation, subtask) into an action chunk."""

    def act(
        self, obs: Observation, prompt: str, prev_chunk: np.ndarray | None = None, delay: int = 0
    ) -> ChunkReply: ...

    def healthy(self) -> bool:
        """Cheap liveness probe (the worker's /healthz), used while the worker is lost."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class DescribedChunkSource(Protocol):
    """A chunk source that says what it was trained for (a PolicyClient's metadata frame, an in-process
    Pi05Policy's checkpoint metadata): the orchestrator checks it against the robot before anything moves."""

    @property
    def metadata(self) -> Mapping[str, Any]: ...


@runtime_checkable
class CloneableChunkSource(Protocol):
    """A chunk source that can open another connection to the same worker (for overlapping requests)."""

    def clone(self) -> ChunkSource: ...


class EpisodeRecorder(Protocol):
    """Where every executed tick, subtask and event of a task goes (agent/recorder.py's EpisodeRecorder)."""

    root: Path  # the LeRobotDataset folder the episodes go to (the API serves them from there)

    def start(self, task: str) -> int: ...

    def record(self, obs: Observation, action: np.ndarray, chunk_id: int = -1, chunk_index: int = -1) -> None: ...

    def subtask(self, text: str, source: str) -> None: ...

    def event(self, kind: str, text: str) -> None: ...

    def finish(self, outcome: str, success: bool | None = None) -> Path | None: ...


class ControlledRobot(Protocol):
    """The robot as the loop drives it: robots.safety.SafeRobot (the safety layer over any robots.base.Robot)."""

    @property
    def estopped(self) -> bool: ...

    def describe(self) -> RobotDescription: ...

    def reset(self, seed: int | None = None) -> Observation: ...

    def observe(self) -> Observation: ...

    def act(self, action: np.ndarray) -> None: ...

    def hold(self) -> None: ...

    def stand_down(self) -> None:
        """The controller stops on purpose (task over, loop stopping): no watchdog alarm until the next command."""
        ...

    def estop(self, reason: str = "operator") -> None: ...

    def reset_estop(self) -> None: ...

    def task_success(self) -> bool | None: ...

    def task_progress(self) -> float | None: ...

    def set_task(self, task: str) -> None: ...
