"""Every message of the live WebSocket (`/api/v1/robots/{robot_id}/live`) as a pydantic model, listed in OpenAPI.

Why models for a socket OpenAPI cannot describe: the console and other clients branch on these keys, so their
shape is written down once and exported as components of `GET /openapi.json` (`document_live_messages`), where
generated clients and people find them next to the REST bodies. The server builds its replies with these models;
the hub's event messages are plain dicts on the hot path, checked against `LiveEventMessage` by the tests.

Server -> client: `LiveHello` first, then `LiveEventMessage` (type event/chunk/state), `LiveFrame`, and answers to
client messages (`LiveAck`, `LivePong`, `LiveError`). Client -> server: `LiveCoachRequest`, `LivePingRequest`.
A refusal at connect time is one `LiveError` followed by a close with a 44xx code (agent/api/live.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field, model_validator
from pydantic.json_schema import models_json_schema

from agent.events import (
    EVENT_PAYLOAD_MODELS,
    ChunkPayload,
    CoachingPayload,
    EpisodePayload,
    ErrorPayload,
    SafetyPayload,
    StatePayload,
    SubtaskPayload,
    TaskStatePayload,
    WorkerPayload,
)
from agent.runtime_status import RobotStatus
from robots.types import RobotDescription

#: Which message type carries an event of a kind (every kind not listed is an "event").
KIND_MESSAGE_TYPE = {"chunk": "chunk", "state": "state"}

EventData = (
    TaskStatePayload
    | SubtaskPayload
    | CoachingPayload
    | SafetyPayload
    | ChunkPayload
    | StatePayload
    | WorkerPayload
    | ErrorPayload
    | EpisodePayload
)


class LiveHello(BaseModel):
    """The first message after a successful connect: the options in force and where things stand now."""

    type: Literal["hello"] = "hello"
    robot_id: str
    role: str = Field(description="The role of the token (or ticket) that opened the socket.")
    fps: float
    size: int | None = Field(description="Longest side of frames in px (None: the camera's own size).")
    quality: int
    cameras: list[str]
    streams: list[str]
    description: RobotDescription | None
    status: RobotStatus | None = Field(description="None when the robot's status could not be read.")


class LiveEventMessage(BaseModel):
    """One orchestrator event; `data` is the payload model of its `kind` (agent/events.py)."""

    type: Literal["event", "chunk", "state"] = Field(description="'chunk' and 'state' kinds have their own type.")
    kind: str
    robot_id: str
    task_id: str | None
    ts: float = Field(description="Wall clock, seconds since the epoch.")
    data: EventData

    @model_validator(mode="before")
    @classmethod
    def _payload_of_its_kind(cls, value: Any) -> Any:
        """Validate `data` with the model its `kind` names (a union alone could match the wrong payload)."""
        if isinstance(value, dict) and value.get("kind") in EVENT_PAYLOAD_MODELS:
            kind = value["kind"]
            expected = KIND_MESSAGE_TYPE.get(kind, "event")
            if value.get("type") != expected:
                raise ValueError(f"a {kind!r} event travels as type {expected!r}, not {value.get('type')!r}")
            value = {**value, "data": EVENT_PAYLOAD_MODELS[kind].model_validate(value.get("data"))}
        elif isinstance(value, dict):
            raise ValueError(f"unknown event kind {value.get('kind')!r}")
        return value


class LiveFrame(BaseModel):
    """The newest JPEG of one camera (older frames a slow client has not taken are dropped, never queued)."""

    type: Literal["frame"] = "frame"
    robot_id: str
    camera: str
    ts: float = Field(description="The observation's timestamp.")
    frame_id: int = Field(description="Increases with every frame the API encodes.")
    width: int
    height: int
    format: Literal["jpeg"] = "jpeg"
    data: str = Field(description="The JPEG, base64-encoded.")


class LiveError(BaseModel):
    """A refusal (then the socket closes) or a failed client request (the socket stays open)."""

    type: Literal["error"] = "error"
    request: Literal["coach"] | None = Field(default=None, description="Which client request failed; sent only then.")
    code: str
    message: str

    def to_text(self) -> str:
        """JSON text without `request` when no request failed (the shape the socket has always sent)."""
        return self.model_dump_json(exclude_none=True)


class LiveAck(BaseModel):
    """A coaching request was applied: what the robot now does (as `POST /tasks/{id}/coaching` answers)."""

    type: Literal["ack"] = "ack"
    request: Literal["coach"] = "coach"
    task_id: str
    utterance: str
    result: Any = None


class LivePong(BaseModel):
    type: Literal["pong"] = "pong"
    ts: Any = Field(default=None, description="Echoes the ping's ts.")


class LiveCoachRequest(BaseModel):
    """Client -> server: coach a task (default: the robot's active task). Needs the coaching permission."""

    type: Literal["coach"] = "coach"
    utterance: str = Field(min_length=1, max_length=500)
    task_id: str | None = None


class LivePingRequest(BaseModel):
    """Client -> server: answered with a `LivePong` carrying the same ts."""

    type: Literal["ping"] = "ping"
    ts: Any = None


LIVE_MESSAGES: tuple[type[BaseModel], ...] = (
    LiveHello,
    LiveEventMessage,
    LiveFrame,
    LiveError,
    LiveAck,
    LivePong,
    LiveCoachRequest,
    LivePingRequest,
    RobotStatus,
    *EVENT_PAYLOAD_MODELS.values(),
)


def live_message_schemas(ref_template: str = "#/components/schemas/{model}") -> dict[str, Any]:
    """JSON schemas of every live message and event payload, by model name."""
    _refs, top = models_json_schema([(model, "serialization") for model in LIVE_MESSAGES], ref_template=ref_template)
    return top.get("$defs", {})


def document_live_messages(app: FastAPI) -> None:
    """Make `app.openapi()` list the live socket's messages as components (OpenAPI has no WebSocket operations)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in live_message_schemas().items():
            components.setdefault(name, definition)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
