"""Request and response bodies of the REST API (responses reuse the store's records where they match: a task is
`agent.store.StoredTask`, the robot's status `agent.runtime_status.RobotStatus`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.api.auth import Role
from agent.runtime_status import RobotStatus
from agent.store import StoredEvent, StoredTask, TokenInfo
from robots.types import RobotDescription


class RequestBody(BaseModel):
    """A body a client sends. Unknown fields are refused with 422, as the configs do: a misspelled field
    (`allow_unlisted`, say) must not quietly create a task without it."""

    model_config = ConfigDict(extra="forbid")


class TaskCreate(RequestBody):
    robot_id: str = Field(min_length=1, max_length=128, description="Which robot runs the task.")
    text: str = Field(min_length=1, description="The household task, e.g. 'put the cup in the sink'.")
    allow_unlisted: bool = Field(
        default=False,
        description="Run a task the robot does not list (it then has no success check and carries that warning); "
        "without it such a task is refused with 422 unknown_task.",
    )


class TaskList(BaseModel):
    items: list[StoredTask]
    limit: int
    offset: int


class EventList(BaseModel):
    items: list[StoredEvent]


class ReasonIn(RequestBody):
    reason: str = Field(default="operator", max_length=500)


class CoachIn(RequestBody):
    utterance: str = Field(min_length=1, max_length=500, description="What the coach says, e.g. 'pick up the cup'.")


class CoachOut(BaseModel):
    task_id: str
    utterance: str
    result: Any = None


class RobotOut(BaseModel):
    id: str
    status: RobotStatus
    description: RobotDescription | None = None


class RobotList(BaseModel):
    items: list[RobotOut]


class EstopOut(BaseModel):
    robot_ids: list[str]
    estopped: bool
    reason: str | None = None


class TokenCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    role: Role


class TokenCreated(TokenInfo):
    token: str = Field(description="The secret. Shown once: only its hash is stored.")


class WhoAmI(BaseModel):
    id: str
    name: str
    role: str
    permissions: list[str] = Field(
        description="The agent.api.auth.Permission values this token's role grants, sorted, e.g. 'estop', 'live', "
        "'tasks:write'. Clients show controls by these instead of keeping their own copy of the role table."
    )


class LiveTicket(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` to `/api/v1/robots/{robot_id}/live`; opens one socket.")
    expires_in_s: float = Field(description="Seconds until the ticket expires if unused.")


class EpisodeLabel(RequestBody):
    outcome: str = Field(min_length=1, max_length=64, description="e.g. succeeded, failed, aborted.")
    success: bool | None = Field(default=None, description="Whether the task was achieved (None: unknown).")


class EpisodeData(BaseModel):
    """Per-frame numbers of an episode for plots (rows decimated evenly to at most max_points)."""

    robot_id: str
    episode_index: int
    fps: float | None = None
    length: int
    frame_index: list[int]
    timestamp: list[float]
    state_names: list[str]
    action_names: list[str]
    state: list[list[float]]
    action: list[list[float]]


class TokenList(BaseModel):
    items: list[TokenInfo]


class Health(BaseModel):
    status: str
    database: str
    robots: dict[str, dict[str, Any]]
    webhooks: list[dict[str, Any]] = Field(default_factory=list)
