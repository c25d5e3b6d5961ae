"""What the store hands back: small pydantic records, also used as API response bodies (one shape end to end)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from agent.types import PauseEntry, Subtask, TaskState


class TokenInfo(BaseModel):
    """An API token as shown to admins: never the secret, only a prefix to recognise it by."""

    id: str
    name: str
    role: str
    prefix: str = Field(description="First characters of the secret, to tell tokens apart.")
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class StoredTask(BaseModel):
    """A task as persisted: the orchestrator's TaskRecord fields plus who created it and when it last changed."""

    id: str
    robot_id: str
    text: str
    state: TaskState
    reason: str | None = None
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    updated_at: float
    episode_index: int | None = None
    outcome: str | None = None
    success: bool | None = None
    episode_path: str | None = None
    subtasks: list[Subtask] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list, description="e.g. 'no success check for this task'")
    pauses: list[PauseEntry] = Field(default_factory=list, description="Every pause and resume with its reason.")
    created_by: str | None = Field(default=None, description="Id of the token that created the task.")

    @field_validator("warnings", "pauses", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value  # rows written before migration 3 have NULL there


class StoredEvent(BaseModel):
    id: int
    robot_id: str
    task_id: str | None = None
    kind: str
    ts: float
    data: dict[str, Any] = Field(default_factory=dict)


class StoredEpisode(BaseModel):
    """One recorded episode in the index; the frames and videos stay in the LeRobot dataset at `root`."""

    robot_id: str
    episode_index: int
    root: str
    task: str | None = None
    task_id: str | None = None
    length: int | None = None
    outcome: str | None = None
    success: bool | None = None
    recorded_at: float
    deleted_at: float | None = None
