"""The robot side of the bridge: serve one SafeRobot over a WebSocket so a remote hearth agent can drive it.

Runs on the robot's computer (``hearth robot-bridge``). Why the safety layer lives here and not on the agent:
the network is the least reliable link in the loop. SafeRobot's clamps, e-stop latch and watchdog act on every
command where the robot is, so when the agent stalls, crashes or the Wi-Fi drops, the robot still stops:
- the agent goes quiet: SafeRobot's watchdog holds the robot after ``watchdog_timeout_s`` and reports it;
- the agent disconnects (or keepalive pings stop coming back): the bridge commands a hold at once and reports
  a ``bridge_disconnect`` safety event.

Protocol (binary frames, msgpack-numpy from hearth_wire/codec.py; JPEG helpers in robots/bridge_wire.py):
- on open the server sends ``{"type": "hello", "protocol", "robot": RobotDescription, "watchdog_timeout_s",
  "limits", "estopped", "driver", "recent_events"}``;
- a request ``{"id": int, "op": str, ...args}`` gets ``{"type": "reply", "id", "ok": True, "result", "estopped"}``
  or ``{"type": "reply", "id", "ok": False, "error_type": "bad_request"|"value_error"|"robot_error", "error"}``;
  a bad frame is answered with an error and the connection (and the server) keep serving;
- safety events are pushed to every connection as ``{"type": "event", "event": SafetyEvent, "estopped"}``.
Requests run in order on one robot thread, except ``estop``, which never queues behind them.
Several connections may be open (an operator panel may observe and e-stop) but only one drives: the first to
reset/act/hold/set_task becomes the driver until it disconnects; the others get a clear error for those ops.
``GET /healthz`` answers "OK" without a key; ``GET /status`` (JSON) and the WebSocket need ``Authorization:
Api-Key <key>`` when keys are configured — a wrong key is refused at the handshake with 401.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from hearth_wire.codec import WireError, packb, unpackb
from hearth_wire.service import WebSocketService, text_response
from robots.bridge_wire import encode_jpeg
from robots.safety import SafeRobot
from robots.types import Observation, SafetyEvent

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
DEFAULT_PORT = 8770
DRIVE_OPS = frozenset({"reset", "act", "hold", "set_task"})
OPS = frozenset(
    {
        "describe",
        "reset",
        "observe",
        "act",
        "hold",
        "estop",
        "reset_estop",
        "task_success",
        "task_progress",
        "set_task",
        "current_state",
        "hold_action",
        "status",
    }
)
MAX_QUEUED_REQUESTS = 32
RECENT_EVENTS = 64


class BridgeRequestError(ValueError):
    """A request the bridge cannot serve as asked (unknown op, missing argument, not the driver)."""


@dataclass
class _Client:
    id: int
    peer: str
    ws: ServerConnection
    connected_at: float = field(default_factory=time.time)
    tasks: set[asyncio.Task] = field(default_factory=set)


def observation_message(obs: Observation, jpeg_quality: int | None) -> dict[str, Any]:
    """An Observation as a wire map; with ``jpeg_quality`` the images travel as JPEG bytes under "jpeg"."""
    message: dict[str, Any] = {
        "state": np.asarray(obs.state, dtype=np.float32),
        "state_names": list(obs.state_names),
        "timestamp": float(obs.timestamp),
    }
    if jpeg_quality is None:
        message["images"] = {name: np.ascontiguousarray(image) for name, image in obs.images.items()}
    else:
        message["jpeg"] = {name: encode_jpeg(image, jpeg_quality) for name, image in obs.images.items()}
    return message


class BridgeServer(WebSocketService):
    """Serve ``robot`` (a SafeRobot) to remote agents; see the module docstring for the protocol.

    Everything but the robot is keyword-only: a bridge is configured from the command line, by name.
    """

    name = "robot bridge"

    def __init__(
        self,
        robot: SafeRobot,
        *,
        api_keys: list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        keepalive_s: float = 2.0,
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        if not isinstance(robot, SafeRobot):
            raise TypeError(
                f"the bridge serves a SafeRobot (safety must stay on the robot side), got {type(robot).__name__}"
            )
        if keepalive_s <= 0:
            raise ValueError(f"keepalive_s must be > 0, got {keepalive_s}")
        super().__init__(host, port, api_keys, int(max_message_bytes), keepalive_s)
        self.robot = robot
        self.description = robot.describe()
        self._description_message = self.description.model_dump()
        self._clients: dict[int, _Client] = {}
        self._client_ids = itertools.count(1)
        self._driver: int | None = None
        self._recent: collections.deque[SafetyEvent] = collections.deque(maxlen=RECENT_EVENTS)
        self._events_lock = threading.Lock()
        self.last_command = "none"
        self.last_command_at = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self._previous_listener: Callable[[SafetyEvent], None] | None = robot.on_event
        robot.on_event = self._on_safety_event

    # ------------------------------------------------------------------ life cycle (the rest: WebSocketService)
    def _startup(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-robot")

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _until_ready(self) -> None:
        logger.info("robot bridge serves %s", self.description.name)

    # ------------------------------------------------------------------ safety events
    def _on_safety_event(self, event: SafetyEvent) -> None:
        """Called from any thread (watchdog, robot thread): remember, log, and push to every connection."""
        with self._events_lock:
            self._recent.append(event)
        if self._previous_listener is not None:
            try:
                self._previous_listener(event)
            except Exception:
                logger.exception("safety listener failed")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._broadcast, event)

    def _broadcast(self, event: SafetyEvent) -> None:
        frame = self._safe_encode({"type": "event", "event": event.model_dump(), "estopped": self.robot.estopped})
        for client in list(self._clients.values()):
            self._spawn(client, self._send(client, frame))

    def recent_events(self) -> list[SafetyEvent]:
        with self._events_lock:
            return list(self._recent)

    # ------------------------------------------------------------------ HTTP side (/healthz and auth: WebSocketService)
    def _route(self, connection: ServerConnection, path: str) -> Response | None:
        if path == "/status":
            return text_response(
                connection, HTTPStatus.OK, json.dumps(self.status(), default=str) + "\n", "application/json"
            )
        return None

    def status(self) -> dict[str, Any]:
        driver = self._clients.get(self._driver) if self._driver is not None else None
        return {
            "robot": self.description.name,
            "estopped": self.robot.estopped,
            "driver": driver.peer if driver else None,
            "clients": len(self._clients),
            "last_command": self.last_command,
            "last_command_age_s": round(time.time() - self.last_command_at, 3) if self.last_command_at else None,
            "watchdog_timeout_s": self.robot.watchdog_timeout_s,
            "recent_events": [e.model_dump(mode="json") for e in self.recent_events()[-16:]],
        }

    # ------------------------------------------------------------------ WebSocket side
    def _hello(self) -> dict[str, Any]:
        driver = self._clients.get(self._driver) if self._driver is not None else None
        return {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "robot": self._description_message,
            "watchdog_timeout_s": self.robot.watchdog_timeout_s,
            "limits": self.robot.limits.model_dump(),
            "estopped": self.robot.estopped,
            "driver": driver.peer if driver else None,
            "recent_events": [e.model_dump() for e in self.recent_events()],
        }

    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(id=next(self._client_ids), peer=str(ws.remote_address), ws=ws)
        self._clients[client.id] = client
        logger.info("agent %s connected", client.peer)
        ordered: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=MAX_QUEUED_REQUESTS)
        worker = asyncio.create_task(self._work(client, ordered))
        why = "closed"
        try:
            await ws.send(self._safe_encode(self._hello()))
            async for frame in ws:
                try:
                    request = self._parse(frame)
                except BridgeRequestError as exc:
                    await self._send(client, self._error(getattr(exc, "request_id", None), "bad_request", str(exc)))
                    continue
                if request["op"] == "estop":
                    self._spawn(client, self._serve(client, request, urgent=True))
                    continue
                try:
                    ordered.put_nowait(request)
                except asyncio.QueueFull:
                    await self._send(
                        client,
                        self._error(request["id"], "bad_request", f"more than {MAX_QUEUED_REQUESTS} requests queued"),
                    )
        except ConnectionClosed as exc:
            why = f"connection lost: {exc}"
        finally:
            worker.cancel()
            self._clients.pop(client.id, None)
            logger.info("agent %s disconnected (%s)", client.peer, why)
            if self._driver == client.id:
                self._driver = None
                await self._hold_after_loss(client, why)

    async def _hold_after_loss(self, client: _Client, why: str) -> None:
        """The driving agent is gone: stop the robot now instead of waiting for the watchdog."""
        assert self._loop is not None and self._executor is not None
        held = True
        try:
            await self._loop.run_in_executor(self._executor, self._command, "hold", self.robot.hold)
        except Exception:
            held = False
            logger.exception("could not command a hold after the agent disconnected")
        logger.warning("driving agent %s disconnected (%s); robot %s", client.peer, why, "held" if held else "NOT held")
        self._on_safety_event(
            SafetyEvent(
                kind="bridge_disconnect",
                message=f"driving agent {client.peer} disconnected ({why}); "
                + ("robot commanded to hold" if held else "hold FAILED"),
                details={"peer": client.peer, "held": held},
            )
        )

    def _spawn(self, client: _Client, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        client.tasks.add(task)
        task.add_done_callback(client.tasks.discard)

    async def _work(self, client: _Client, ordered: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            request = await ordered.get()
            await self._serve(client, request, urgent=False)

    async def _send(self, client: _Client, frame: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(frame)

    def _parse(self, frame: str | bytes) -> dict[str, Any]:
        if isinstance(frame, str):
            raise BridgeRequestError("expected a binary msgpack frame, got a text frame")
        try:
            message = unpackb(frame)
        except WireError as exc:
            raise BridgeRequestError(str(exc)) from None
        if not isinstance(message, dict):
            raise BridgeRequestError(f"a request must be a map with 'id' and 'op', got {type(message).__name__}")
        request_id = message.get("id")
        if request_id is not None and (not isinstance(request_id, int) or isinstance(request_id, bool)):
            raise BridgeRequestError(f"request 'id' must be an integer, got {request_id!r}")
        op = message.get("op")
        if op not in OPS:
            error = BridgeRequestError(f"unknown op {op!r}; known ops: {', '.join(sorted(OPS))}")
            error.request_id = request_id  # type: ignore[attr-defined]
            raise error
        return message

    @staticmethod
    def _error(request_id: int | None, error_type: str, text: str) -> bytes:
        return packb({"type": "reply", "id": request_id, "ok": False, "error_type": error_type, "error": text})

    def _safe_encode(self, message: dict[str, Any]) -> bytes:
        try:
            return packb(message)
        except WireError:  # e.g. an event detail the codec cannot carry: send it as text
            return packb(json.loads(json.dumps(message, default=str)))

    async def _serve(self, client: _Client, request: dict[str, Any], urgent: bool) -> None:
        assert self._loop is not None
        op, request_id = request["op"], request.get("id")
        try:
            if op in DRIVE_OPS:
                self._claim_driver(client, op)
            # e-stop runs on its own thread so it never waits behind queued requests (SafeRobot is thread-safe)
            executor = None if urgent else self._executor
            result = await self._loop.run_in_executor(executor, self._dispatch, op, request)
            frame = self._safe_encode(
                {"type": "reply", "id": request_id, "ok": True, "result": result, "estopped": self.robot.estopped}
            )
        except BridgeRequestError as exc:
            frame = self._error(request_id, "bad_request", str(exc))
        except ValueError as exc:  # the robot refused the arguments (shape, unknown task): the caller's mistake
            frame = self._error(request_id, "value_error", str(exc))
        except Exception as exc:
            logger.exception("robot op %s failed for %s", op, client.peer)
            frame = self._error(request_id, "robot_error", f"{type(exc).__name__}: {exc}")
        await self._send(client, frame)

    def _claim_driver(self, client: _Client, op: str) -> None:
        if self._driver is None or self._driver not in self._clients:
            if self._driver != client.id:
                logger.info("agent %s now drives the robot", client.peer)
            self._driver = client.id
            return
        if self._driver != client.id:
            other = self._clients[self._driver]
            raise BridgeRequestError(
                f"the robot is driven by another agent ({other.peer}); this connection may observe and e-stop, not {op}"
            )

    def _command(self, name: str, fn: Callable[[], Any]) -> Any:
        result = fn()
        self.last_command = name
        self.last_command_at = time.time()
        return result

    # ------------------------------------------------------------------ robot calls (robot thread)
    def _dispatch(self, op: str, request: dict[str, Any]) -> Any:
        robot = self.robot
        if op == "describe":
            return self._description_message
        if op == "observe":
            return observation_message(robot.observe(), _jpeg_quality(request))
        if op == "reset":
            seed = request.get("seed")
            if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                raise BridgeRequestError(f"reset 'seed' must be an integer or null, got {seed!r}")
            quality = _jpeg_quality(request)
            return observation_message(self._command("reset", lambda: robot.reset(seed)), quality)
        if op == "act":
            action = _action(request.get("action"))
            return self._command("act", lambda: robot.act(action))
        if op == "hold":
            return self._command("hold", robot.hold)
        if op == "estop":
            reason = request.get("reason", "remote operator")
            return self._command("estop", lambda: robot.estop(str(reason)))
        if op == "reset_estop":
            return robot.reset_estop()
        if op == "task_success":
            value = robot.task_success()
            return None if value is None else bool(value)
        if op == "task_progress":
            value = robot.task_progress()
            return None if value is None else float(value)
        if op == "set_task":
            task = request.get("task")
            if not isinstance(task, str):
                raise BridgeRequestError(f"set_task needs 'task' as a string, got {task!r}")
            return robot.set_task(task)
        if op == "current_state":
            return np.asarray(robot.current_state(), dtype=np.float32)
        if op == "hold_action":
            value = robot.hold_action()
            return None if value is None else np.asarray(value, dtype=np.float64)
        if op == "status":
            return self.status()
        raise BridgeRequestError(f"unknown op {op!r}")  # unreachable: _parse checked it


def _jpeg_quality(request: dict[str, Any]) -> int | None:
    quality = request.get("jpeg_quality")
    if quality is None:
        return None
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise BridgeRequestError(f"'jpeg_quality' must be an integer 1..100 or null, got {quality!r}")
    return quality


def _action(raw: object) -> np.ndarray:
    if raw is None:
        raise BridgeRequestError("act needs 'action': a float array with one value per action dimension")
    if isinstance(raw, np.ndarray):
        if raw.dtype.kind not in "iuf":
            raise BridgeRequestError(f"'action' must be a numeric array, got dtype {raw.dtype}")
        return raw.astype(np.float64)
    if isinstance(raw, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
        return np.asarray(raw, dtype=np.float64)
    raise BridgeRequestError(f"'action' must be a numeric array or list of numbers, got {type(raw).__name__}")
