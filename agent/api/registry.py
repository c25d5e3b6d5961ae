"""The API's boundary to the orchestrator: robot id -> RobotRuntime (plus where its episodes are recorded).

Routers never touch a runtime except through here, so the contract's RobotRuntime methods are called in one
place and orchestrator errors become coded API errors in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from agent.api.errors import ApiError, not_found
from agent.runtime_status import RobotStatus
from robots.types import RobotDescription

if TYPE_CHECKING:
    from agent.orchestrator import RobotRuntime
    from agent.task_queue import TaskRecord

logger = logging.getLogger(__name__)


class RuntimeRegistry:
    def __init__(
        self, runtimes: Mapping[str, RobotRuntime] | None = None, episode_roots: Mapping[str, Path | str] | None = None
    ):
        self._runtimes: dict[str, RobotRuntime] = dict(runtimes or {})
        self._episode_roots = {rid: Path(root) for rid, root in (episode_roots or {}).items()}

    def ids(self) -> list[str]:
        return list(self._runtimes)

    def items(self) -> list[tuple[str, RobotRuntime]]:
        return list(self._runtimes.items())

    def __contains__(self, robot_id: object) -> bool:
        return robot_id in self._runtimes

    def get(self, robot_id: str) -> RobotRuntime:
        runtime = self._runtimes.get(robot_id)
        if runtime is None:
            raise not_found("robot", robot_id)
        return runtime

    def episodes_root(self, robot_id: str) -> Path | None:
        if robot_id in self._episode_roots:
            return self._episode_roots[robot_id]
        runtime = self._runtimes.get(robot_id)
        if runtime is None or runtime.recorder is None:
            return None
        return Path(runtime.recorder.root)

    def episode_roots(self) -> dict[str, Path]:
        roots = {}
        for robot_id in self.ids():
            root = self.episodes_root(robot_id)
            if root is not None:
                roots[robot_id] = root
        return roots

    def describe(self, robot_id: str) -> RobotDescription:
        """The robot's cameras, joints, control rate and tasks (read once, when the runtime was built)."""
        return self.get(robot_id).description

    def status(self, robot_id: str) -> RobotStatus:
        """The robot's status now, typed: the runtime hands it over as JSON-ready data (agent/runtime_status.py)."""
        return RobotStatus.model_validate(self.get(robot_id).status())

    def find_live_task(self, task_id: str) -> TaskRecord | None:
        """The runtime's own (freshest) record of a task, from whichever robot has it."""
        for runtime in self._runtimes.values():
            try:
                return runtime.task(task_id)
            except KeyError:
                continue
        return None

    def start_all(self) -> None:
        for robot_id, runtime in self._runtimes.items():
            logger.info("starting robot runtime", extra={"robot_id": robot_id})
            runtime.start()

    def stop_all(self) -> None:
        for robot_id, runtime in self._runtimes.items():
            try:
                runtime.stop()
            except Exception:
                logger.exception("robot runtime did not stop cleanly", extra={"robot_id": robot_id})


def runtime_error(exc: Exception) -> ApiError:
    """Turn an orchestrator exception into the API's coded error (anything else is re-raised: a real bug)."""
    from agent.admission import TaskRejected
    from agent.orchestrator import RuntimeCommandError
    from agent.types import InvalidTransition

    if isinstance(exc, TaskRejected):  # unknown_task, task_too_long_for_policy (422), queue_full (429)
        return ApiError(exc.status, exc.code, exc.message, details=[exc.details] if exc.details else None)
    if isinstance(exc, InvalidTransition):
        return ApiError(409, "invalid_transition", str(exc))
    if isinstance(exc, KeyError):
        return ApiError(404, "task_not_found", str(exc.args[0]) if exc.args else "task not found")
    if isinstance(exc, RuntimeCommandError):
        if "did not apply" in str(exc):
            return ApiError(409, "robot_busy", str(exc))
        return ApiError(409, "task_not_active", str(exc))
    if isinstance(exc, ValueError):
        return ApiError(422, "rejected", str(exc))
    raise exc
