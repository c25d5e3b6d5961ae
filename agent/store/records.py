"""What the store hands back: small pydantic records, also used as API response bodies (one shape end to end).

A task has two models only: the orchestrator's `TaskRecord` (agent/task_queue.py) and `StoredTask`, which extends
it with the store's bookkeeping and is what `/api/v1/tasks` answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from agent.task_queue import TaskRecord
from agent.types import TaskState


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


class StoredTask(TaskRecord):
    """A task as persisted and as the API shows it: the orchestrator's TaskRecord plus who created it and when its
    row last changed. `from_record` is the one conversion from the runtime's record; nothing else maps fields."""

    state: TaskState
    created_at: float
    updated_at: float
    created_by: str | None = Field(default=None, description="Id of the token that created the task.")

    @field_validator("warnings", "pauses", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value  # rows written before migration 3 have NULL there

    @classmethod
    def from_record(
        cls, record: TaskRecord, created_by: str | None = None, updated_at: float | None = None
    ) -> StoredTask:
        """The runtime's record as a stored task (`updated_at` defaults to its creation: never saved yet)."""
        fields = record.model_dump(exclude={"created_by", "updated_at"})  # a StoredTask is a TaskRecord too
        return cls(**fields, created_by=created_by, updated_at=record.created_at if updated_at is None else updated_at)


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
