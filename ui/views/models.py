"""What the console reads from the API, as small typed models instead of `dict.get(...) or {}` in every view.

The console may not import `agent` (it talks HTTP only), so these mirror just the fields the pages use of the
API's bodies (agent/runtime_status.py RobotStatus, agent/store/records.py StoredTask, robots/types.py
RobotDescription). Unknown fields are ignored: the API may add fields without breaking an older console.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ACTIVE_STATES = ("running", "paused", "queued")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CameraInfo(_Body):
    name: str


class RobotDescriptionView(_Body):
    name: str | None = None
    tasks: list[str] = Field(default_factory=list)
    cameras: list[CameraInfo] = Field(default_factory=list)


class RobotInfo(_Body):
    """One item of GET /robots."""

    id: str
    description: RobotDescriptionView = Field(default_factory=RobotDescriptionView)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> RobotInfo:
        """The API sends `description: null` for a robot it could not describe; treat it as an empty one."""
        return cls.model_validate({**body, "description": body.get("description") or {}})

    @property
    def title(self) -> str:
        """`kitchen (sim-kitchen)`, or one name when the id and the robot's name are the same."""
        name = self.description.name
        return f"{self.id} ({name})" if name and name != self.id else self.id

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.description.cameras]

    def coaching_example(self) -> str:
        """A coaching placeholder that fits this robot's scene: "pick up the can" for "put the can in the sink"."""
        for task in self.description.tasks:
            match = re.match(r"(?:put|bring|take|move) (the \w+)", task)
            if match:
                return f"e.g. pick up {match.group(1)}"
        return "e.g. open the gripper"

    def task_example(self) -> str:
        return f"e.g. {self.description.tasks[0]}" if self.description.tasks else "e.g. put the can in the sink"


class CoachingView(_Body):
    coached: str
    predicted: str | None = None
    remaining_s: float | None = None


class StatusView(_Body):
    """GET /robots/{id}/status (agent/runtime_status.py RobotStatus), the fields the console shows."""

    estopped: bool = False
    queue_held: bool = False
    task_id: str | None = None
    task_text: str | None = None
    task_state: str | None = None
    reason: str | None = None
    warnings: list[str] = Field(default_factory=list)
    coaching: CoachingView | None = None
    queued: int = 0


class SubtaskEntry(_Body):
    text: str
    source: str
    started_at: float | None = None


class PauseEntry(_Body):
    ts: float
    action: str
    reason: str


class TaskView(_Body):
    """GET /tasks/{id} and the body of POST /tasks (agent/store/records.py StoredTask)."""

    id: str
    text: str
    state: str
    reason: str | None = None
    warnings: list[str] = Field(default_factory=list)
    subtasks: list[SubtaskEntry] = Field(default_factory=list)
    pauses: list[PauseEntry] = Field(default_factory=list)
