"""The live WebSocket `/api/v1/robots/{robot_id}/live`: events, JPEG camera frames, action chunks and state.

A client that stops reading cannot slow the robot: what it has yet to take waits in a bounded outbox filled by
the hub (agent/api/live_hub.py), which drops the oldest events and keeps only the newest frame per camera.

Authentication: `ticket` (from `POST /api/v1/live/tickets`, single use, 30 s; agent/api/live_tickets.py) or an
`Authorization: Bearer` header. A bearer token in the query string is not accepted: access logs and browser
histories keep URLs, and a browser (which cannot set WebSocket headers) gets a ticket instead. Refusals are one `LiveError` then a close:
4401 (no, bad, used or expired credentials), 4403 (role lacks the live permission), 4404, 4400 (bad options).

Query parameters: ticket, fps (0 = no frames; capped by api.live_max_fps), size (longest side in px), quality
(JPEG 10..95), cameras (comma list; default all), streams (comma list of events,frames,chunks,state).
Every message is a model in agent/api/live_messages.py (listed in the OpenAPI document).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from agent.api.auth import Permission, allowed, authenticate
from agent.api.errors import ApiError
from agent.api.live_hub import LiveHub, Outbox
from agent.api.live_messages import LiveAck, LiveError, LiveHello, LivePong
from agent.api.live_tickets import TicketRefused
from agent.runtime_status import RobotStatus
from agent.store import NotFound, TokenInfo

if TYPE_CHECKING:
    from agent.api.context import ApiContext
    from agent.orchestrator import RobotRuntime

logger = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

STREAMS = ("events", "frames", "chunks", "state")
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_BAD_REQUEST = 4401, 4403, 4404, 4400


@dataclass(frozen=True)
class LiveOptions:
    """What a viewer asked for in the query string, checked against the robot and the deployment's limits."""

    fps: float
    size: int | None
    quality: int
    streams: frozenset[str]
    cameras: list[str]


@dataclass(frozen=True)
class LiveSession:
    """Everything one open socket's tasks share: who connected, to which robot, with which options."""

    ctx: ApiContext
    token: TokenInfo
    hub: LiveHub
    runtime: RobotRuntime
    robot_id: str
    options: LiveOptions


class _Refused(Exception):
    """Why a socket is refused at connect time: the close code and the coded error sent before closing."""

    def __init__(self, close_code: int, code: str, message: str):
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message


def _bearer_from(websocket: WebSocket) -> str | None:
    """The bearer token from the Authorization header (never from the URL, see the module docstring)."""
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _identify(ctx: ApiContext, websocket: WebSocket) -> TokenInfo:
    """The caller's token, from a ticket when one is given (else the bearer token); _Refused with 4401/4403."""
    ticket = websocket.query_params.get("ticket")
    try:
        token = _redeem(ctx, ticket) if ticket is not None else authenticate(ctx.store, _bearer_from(websocket))
    except TicketRefused as exc:
        raise _Refused(CLOSE_UNAUTHORIZED, exc.code, exc.message) from None
    except ApiError as exc:
        raise _Refused(CLOSE_UNAUTHORIZED, exc.code, exc.message) from None
    if not allowed(token.role, Permission.LIVE):
        raise _Refused(CLOSE_FORBIDDEN, "forbidden", f"role {token.role!r} may not watch the live stream")
    return token


def _redeem(ctx: ApiContext, ticket: str) -> TokenInfo:
    """The ticket's token, once; refused as well when the token was revoked since the ticket was issued."""
    token = ctx.tickets.redeem(ticket)
    try:
        current = ctx.store.get_token(token.id)
    except NotFound:
        current = None
    if current is None or not current.active:
        raise TicketRefused("unauthorized", "the token this ticket was issued to has been revoked")
    return current


class _BadParam(ValueError):
    pass


def _parse_options(websocket: WebSocket, max_fps: float, cameras_available: list[str]) -> LiveOptions:
    params = websocket.query_params
    try:
        fps = float(params.get("fps", "5"))
        size = int(params["size"]) if params.get("size") else None
        quality = int(params.get("quality", "80"))
    except ValueError as exc:
        raise _BadParam(f"fps, size and quality must be numbers: {exc}") from None
    if not (0 <= fps <= max_fps):
        raise _BadParam(f"fps must be between 0 and {max_fps}")
    if size is not None and not (16 <= size <= 1920):
        raise _BadParam("size must be between 16 and 1920 pixels")
    if not (10 <= quality <= 95):
        raise _BadParam("quality must be between 10 and 95")
    streams = {s.strip() for s in params.get("streams", ",".join(STREAMS)).split(",") if s.strip()}
    unknown = streams - set(STREAMS)
    if unknown:
        raise _BadParam(f"unknown streams {sorted(unknown)}; choose from {list(STREAMS)}")
    cameras = [c.strip() for c in params.get("cameras", "").split(",") if c.strip()] or cameras_available
    missing = [c for c in cameras if cameras_available and c not in cameras_available]
    if missing:
        raise _BadParam(f"unknown cameras {missing}; this robot has {cameras_available}")
    return LiveOptions(fps=fps, size=size, quality=quality, streams=frozenset(streams), cameras=cameras)


async def _refuse(websocket: WebSocket, refused: _Refused) -> None:
    await websocket.send_text(LiveError(code=refused.code, message=refused.message).to_text())
    await websocket.close(code=refused.close_code, reason=refused.code)


async def _produce_frames(session: LiveSession, outbox: Outbox) -> None:
    options = session.options
    period = 1.0 / options.fps
    loop = asyncio.get_running_loop()
    last_stamp: dict[str, Any] = {}
    while True:
        started = loop.time()
        obs = session.runtime.latest_observation()
        if obs is not None:
            for camera in options.cameras:
                if camera not in obs.images:
                    continue
                stamp = (obs.timestamp, id(obs))
                if last_stamp.get(camera) == stamp:
                    continue
                if outbox.has_pending_frame(camera):
                    outbox.dropped_frames += 1  # the client is behind: skip encoding, keep only what is waiting
                    continue
                last_stamp[camera] = stamp
                frame = await session.hub.frame(session.robot_id, obs, camera, options.size, options.quality)
                outbox.put_frame(camera, frame)
        await asyncio.sleep(max(0.0, period - (loop.time() - started)))


async def _send(websocket: WebSocket, outbox: Outbox) -> None:
    while True:
        for text in await outbox.take():
            await websocket.send_text(text)


async def _receive(websocket: WebSocket, session: LiveSession) -> None:
    while True:
        raw = await websocket.receive_text()
        try:
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("message must be a JSON object")
        except ValueError:
            await websocket.send_text(LiveError(code="malformed_json", message="send JSON objects").to_text())
            continue
        kind = message.get("type")
        if kind == "ping":
            await websocket.send_text(LivePong(ts=message.get("ts")).model_dump_json())
        elif kind == "coach":
            await websocket.send_text(await _coach(session, message))
        else:
            error = LiveError(code="unknown_message", message=f"unknown message type {kind!r}")
            await websocket.send_text(error.to_text())


async def _coach(session: LiveSession, message: dict[str, Any]) -> str:
    """A `LiveCoachRequest` applied as `POST /tasks/{id}/coaching` would: the LiveAck or LiveError as JSON text."""
    from agent.api.routers.coaching import coach_task

    def error(code: str, text: str) -> str:
        return LiveError(request="coach", code=code, message=text).to_text()

    role = session.token.role
    if not allowed(role, Permission.COACHING):
        return error("forbidden", f"role {role!r} may not coach")
    utterance = message.get("utterance")
    task_id = message.get("task_id")
    if not isinstance(utterance, str) or not utterance.strip() or len(utterance) > 500:
        return error("validation_error", "utterance: 1..500 characters")
    if task_id is None:
        status: RobotStatus = await run_in_threadpool(session.ctx.registry.status, session.robot_id)
        task_id = status.task_id
        if task_id is None:
            return error("no_active_task", "no task is running")
    try:
        result = await run_in_threadpool(coach_task, session.ctx, str(task_id), utterance)
    except ApiError as exc:
        return error(exc.code, exc.message)
    return LiveAck(**result.model_dump()).model_dump_json()


def _connect(ctx: ApiContext, websocket: WebSocket, robot_id: str) -> LiveSession:
    """Authenticate, find the robot and read the options (blocking: the store is asked); _Refused when not."""
    token = _identify(ctx, websocket)
    if robot_id not in ctx.registry:
        raise _Refused(CLOSE_NOT_FOUND, "robot_not_found", f"no robot {robot_id!r}")
    cameras_available = ctx.registry.describe(robot_id).camera_names
    try:
        options = _parse_options(websocket, ctx.config.live_max_fps, cameras_available)
    except _BadParam as exc:
        raise _Refused(CLOSE_BAD_REQUEST, "validation_error", str(exc)) from None
    return LiveSession(ctx, token, ctx.hub, ctx.registry.get(robot_id), robot_id, options)


def _hello(session: LiveSession) -> LiveHello:
    """Where things stand now, so a viewer joining mid-task need not wait for the next event."""
    try:
        status = session.ctx.registry.status(session.robot_id)
    except Exception:
        logger.warning(
            "robot status unavailable for the live hello", extra={"robot_id": session.robot_id}, exc_info=True
        )
        status = None
    options = session.options
    return LiveHello(
        robot_id=session.robot_id,
        role=session.token.role,
        fps=options.fps,
        size=options.size,
        quality=options.quality,
        cameras=options.cameras,
        streams=sorted(options.streams),
        description=session.ctx.registry.describe(session.robot_id),
        status=status,
    )


@router.websocket("/robots/{robot_id}/live")
async def live(websocket: WebSocket, robot_id: str) -> None:
    ctx: ApiContext = websocket.app.state.ctx
    await websocket.accept()
    try:
        session = await run_in_threadpool(_connect, ctx, websocket, robot_id)
    except _Refused as refused:
        await _refuse(websocket, refused)
        return
    outbox = Outbox(asyncio.get_running_loop(), set(session.options.streams))
    hello = await run_in_threadpool(_hello, session)
    await websocket.send_text(hello.model_dump_json())
    session.hub.register(robot_id, outbox)
    tasks = [asyncio.create_task(_send(websocket, outbox)), asyncio.create_task(_receive(websocket, session))]
    if "frames" in session.options.streams and session.options.fps > 0:
        tasks.append(asyncio.create_task(_produce_frames(session, outbox)))
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError | ConnectionError):
                logger.warning("live socket task failed", exc_info=exc)
    finally:
        session.hub.unregister(robot_id, outbox)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
