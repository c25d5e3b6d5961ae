"""BridgeRobot: the agent side of the robot bridge ("bridge" in the robot registry).

A remote robot served by ``hearth robot-bridge`` (robots/bridge_server.py) behaves like any local Robot:
``make_robot("bridge", url="ws://robot:8770", api_key=...)``. It is a SafeRobot on purpose: the robot's safety
layer runs on the robot's computer, and the orchestrator wraps any robot that is not a SafeRobot in a local one.
A second, local layer would be blind to the robot side: its e-stop would only send holds (the robot-side latch
would stay open) and its events would never include the robot's own watchdog. As a SafeRobot proxy, ``estop``,
``reset_estop`` and ``hold`` go to the robot's safety layer, and its SafetyEvents (clamps, watchdog,
disconnects) arrive here, live, through ``on_event`` — which the orchestrator wires to its event bus.

Calls are synchronous and thread-safe: a reader thread matches replies to requests by id and dispatches pushed
events, so an e-stop from the API thread is sent while the control thread waits for an observation. Every call
waits at most ``timeout_s``; a lost connection raises ``BridgeUnavailable`` and the next call reconnects. An
e-stop that cannot be delivered stays latched here (``estopped`` is True, ``act`` refuses) and is delivered
first on reconnect; meanwhile the robot side's watchdog has already stopped the robot.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection

from hearth_wire.client import open_connection
from hearth_wire.codec import WireError, packb, unpackb
from robots.bridge_wire import decode_jpeg
from robots.safety import SafeRobot, SafetyLimits
from robots.types import Observation, RobotDescription, SafetyEvent

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1


class BridgeUnavailable(RuntimeError):
    """The robot bridge cannot be reached, dropped the connection, or did not answer within the timeout."""


class BridgeAuthError(BridgeUnavailable):
    """The bridge refused the handshake: missing or wrong API key."""


class BridgeRobotError(RuntimeError):
    """The robot side failed to carry out a request (its message says why)."""


class BridgeProtocolError(ValueError):
    """The bridge rejected a request as malformed, or the peer does not speak this protocol."""


def bridge_url(url: str) -> str:
    if "://" not in url:
        url = "ws://" + url
    if urlsplit(url).scheme not in ("ws", "wss"):
        raise ValueError(f"robot bridge URL must start with ws:// or wss://, got {url!r}")
    return url


def observation_from_message(message: dict[str, Any]) -> Observation:
    images = dict(message.get("images") or {})
    for name, data in (message.get("jpeg") or {}).items():
        images[name] = decode_jpeg(data)
    return Observation(
        images=images,
        state=message["state"],
        state_names=list(message.get("state_names") or []),
        timestamp=float(message.get("timestamp", time.time())),
    )


class BridgeRobot(SafeRobot):
    """A robot on another computer, reached through ``hearth robot-bridge`` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        jpeg_quality: int | None = None,
        connect_timeout_s: float | None = None,
        on_event: Any = None,
    ) -> None:
        # SafeRobot.__init__ is deliberately not called: the safety layer (limits, watchdog) runs on the robot.
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if jpeg_quality is not None and not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be 1..100 or None, got {jpeg_quality}")
        self.url = bridge_url(url)
        self.api_key = api_key
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s if connect_timeout_s is not None else timeout_s)
        self.jpeg_quality = None if jpeg_quality is None else int(jpeg_quality)
        self.on_event = on_event
        self.events: collections.deque[SafetyEvent] = collections.deque(maxlen=256)
        self.reconnects = 0
        self._lock = threading.RLock()  # guards the connection object
        self._conn: ClientConnection | None = None
        self._reader: threading.Thread | None = None
        self._pending: dict[int, Future] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._remote_estopped = False
        self._undelivered_estop: str | None = None
        self._closed = False
        self.hello: dict[str, Any] = {}
        self._connect()
        described = RobotDescription.model_validate(self.hello["robot"])
        # The bridge carries one image per camera (the policy's frames), so nobody may expect operator renders.
        cameras = [c.model_copy(update={"operator_height": None, "operator_width": None}) for c in described.cameras]
        self._desc = described.model_copy(update={"cameras": cameras})
        self._n = len(self._desc.actions)
        self.watchdog_timeout_s = float(self.hello.get("watchdog_timeout_s", 0.0))
        try:
            self.limits = SafetyLimits.model_validate(self.hello.get("limits") or {})
        except ValueError:
            self.limits = SafetyLimits()

    # ------------------------------------------------------------------ connection
    def _connect(self) -> ClientConnection:
        with self._lock:
            if self._conn is not None:
                return self._conn
            if self._closed:
                raise BridgeUnavailable(f"robot bridge {self.url}: this BridgeRobot is closed")
            try:
                conn = open_connection(
                    self.url,
                    self.api_key,
                    self.connect_timeout_s,
                    ping_interval=2.0,
                    ping_timeout=max(2.0, self.timeout_s),
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
                if status in (401, 403):
                    raise BridgeAuthError(f"robot bridge {self.url} refused the API key: {body or status}") from None
                raise BridgeUnavailable(
                    f"robot bridge {self.url} refused the connection: HTTP {status} {body}"
                ) from None
            except InvalidURI as exc:
                raise ValueError(f"invalid robot bridge URL {self.url!r}: {exc}") from None
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                raise BridgeUnavailable(f"cannot reach robot bridge {self.url}: {exc}") from None
            try:
                hello = unpackb(conn.recv(timeout=self.connect_timeout_s))
            except (TimeoutError, ConnectionClosed, WireError) as exc:
                conn.close()
                raise BridgeUnavailable(f"robot bridge {self.url} sent no valid hello: {exc}") from None
            if not isinstance(hello, dict) or hello.get("type") != "hello":
                conn.close()
                raise BridgeProtocolError(f"{self.url} is not a hearth robot bridge (first frame: {hello!r:.200})")
            if hello.get("protocol") != PROTOCOL_VERSION:
                conn.close()
                raise BridgeProtocolError(
                    f"robot bridge {self.url} speaks protocol {hello.get('protocol')}, this agent {PROTOCOL_VERSION}"
                )
            if self.hello:
                self.reconnects += 1
            self.hello = hello
            self._remote_estopped = bool(hello.get("estopped"))
            known = {(e.kind, e.timestamp) for e in self.events}
            for raw in hello.get("recent_events") or []:
                event = self._parse_event(raw)
                if event is not None and (event.kind, event.timestamp) not in known:
                    self.events.append(event)
            self._conn = conn
            self._reader = threading.Thread(target=self._read, args=(conn,), name="bridge-reader", daemon=True)
            self._reader.start()
            logger.info("connected to robot bridge %s (%s)", self.url, hello["robot"].get("name"))
            if self._undelivered_estop is not None:  # before anything else on the new connection
                self._request(conn, "estop", {"reason": self._undelivered_estop})
                self._undelivered_estop = None
                self._remote_estopped = True
            return conn

    def _drop(self, conn: ClientConnection, why: str) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        with contextlib.suppress(Exception):
            conn.close()
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(BridgeUnavailable(f"robot bridge {self.url}: {why}"))

    def _read(self, conn: ClientConnection) -> None:
        """Reader thread: replies resolve their request's future, events go to ``on_event``."""
        why = "connection closed"
        try:
            for frame in conn:
                try:
                    message = unpackb(frame)
                except WireError as exc:
                    logger.warning("robot bridge %s sent an undecodable frame: %s", self.url, exc)
                    continue
                if not isinstance(message, dict):
                    continue
                if "estopped" in message:
                    self._remote_estopped = bool(message["estopped"])
                if message.get("type") == "event":
                    self._deliver_event(message.get("event"))
                elif message.get("type") == "reply":
                    with self._pending_lock:
                        future = self._pending.pop(message.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(message)
                    elif message.get("id") is None and not message.get("ok", True):
                        logger.warning("robot bridge %s: %s", self.url, message.get("error"))
        except ConnectionClosed as exc:
            why = f"connection lost: {exc}"
        except Exception as exc:  # the reader must always release waiting callers
            why = f"reader failed: {exc}"
            logger.exception("robot bridge reader failed")
        self._drop(conn, why)

    @staticmethod
    def _parse_event(raw: object) -> SafetyEvent | None:
        try:
            return SafetyEvent.model_validate(raw)
        except ValueError:
            logger.warning("robot bridge sent a malformed safety event: %r", raw)
            return None

    def _deliver_event(self, raw: object) -> None:
        event = self._parse_event(raw)
        if event is None:
            return
        self.events.append(event)
        logger.info("robot-side safety %s: %s", event.kind, event.message)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                logger.exception("safety on_event callback failed")

    def _call(self, op: str, **args: Any) -> Any:
        return self._request(self._connect(), op, args)

    def _request(self, conn: ClientConnection, op: str, args: dict[str, Any]) -> Any:
        request_id = next(self._ids)
        future: Future = Future()
        with self._pending_lock:
            self._pending[request_id] = future
        try:
            conn.send(packb({"id": request_id, "op": op, **args}))
        except (ConnectionClosed, OSError) as exc:
            with self._pending_lock:
                self._pending.pop(request_id, None)
            self._drop(conn, f"send failed: {exc}")
            raise BridgeUnavailable(f"robot bridge {self.url}: connection lost while sending {op}: {exc}") from None
        try:
            reply = future.result(timeout=self.timeout_s)
        except FutureTimeout:
            with self._pending_lock:
                self._pending.pop(request_id, None)
            raise BridgeUnavailable(
                f"robot bridge {self.url} did not answer {op} within {self.timeout_s:.1f} s"
            ) from None
        if reply.get("ok"):
            return reply.get("result")
        text = str(reply.get("error", "unknown error"))
        kind = reply.get("error_type")
        if kind == "value_error":
            raise ValueError(text)
        if kind == "bad_request":
            raise BridgeProtocolError(f"robot bridge rejected {op}: {text}")
        raise BridgeRobotError(f"robot side failed {op}: {text}")

    # ------------------------------------------------------------------ Robot interface
    def describe(self) -> RobotDescription:
        return self._desc

    def reset(self, seed: int | None = None) -> Observation:
        return observation_from_message(self._call("reset", seed=seed, jpeg_quality=self.jpeg_quality))

    def observe(self) -> Observation:
        return observation_from_message(self._call("observe", jpeg_quality=self.jpeg_quality))

    def current_state(self) -> np.ndarray:
        return np.asarray(self._call("current_state"), dtype=np.float32)

    def act(self, action: np.ndarray) -> None:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self._n,):
            raise ValueError(
                f"action must have shape ({self._n},) ({', '.join(self._desc.action_names)}), got {a.shape}"
            )
        conn = self._connect()  # a new connection delivers an undelivered e-stop first
        if self._undelivered_estop is not None:  # never drive past an undelivered e-stop: deliver it, or raise
            self._request(conn, "estop", {"reason": self._undelivered_estop})
            self._undelivered_estop = None
            self._remote_estopped = True
        self._request(conn, "act", {"action": a})

    def hold(self) -> None:
        self._call("hold")

    def hold_action(self) -> np.ndarray | None:
        value = self._call("hold_action")
        return None if value is None else np.asarray(value, dtype=np.float64)

    def task_success(self) -> bool | None:
        return self._call("task_success")

    def task_progress(self) -> float | None:
        return self._call("task_progress")

    def set_task(self, task: str) -> None:
        self._call("set_task", task=task)

    def status(self) -> dict[str, Any]:
        """The bridge's view: driver, last command, e-stop, recent safety events."""
        return self._call("status")

    @property
    def estopped(self) -> bool:
        return self._remote_estopped or self._undelivered_estop is not None

    def estop(self, reason: str = "operator") -> None:
        """Latch the robot-side e-stop; if the bridge is unreachable the latch is kept here and sent on reconnect."""
        self._undelivered_estop = reason
        try:
            self._call("estop", reason=reason)
        except BridgeUnavailable as exc:
            # not raised: the caller's bookkeeping (task stopped) must still happen; the robot side's watchdog
            # stops the robot while the agent cannot reach it, and the latch is delivered on reconnect
            logger.error("e-stop could not reach robot bridge %s (%s); latched here until delivered", self.url, exc)
            self._deliver_event(
                SafetyEvent(
                    kind="estop_undelivered",
                    message=f"e-stop could not reach the robot ({exc}); latched on the agent, sent on reconnect",
                    details={"reason": reason},
                ).model_dump()
            )
            return
        self._undelivered_estop = None
        self._remote_estopped = True

    def reset_estop(self) -> None:
        self._undelivered_estop = None
        self._call("reset_estop")
        self._remote_estopped = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn = self._conn
        if conn is not None:
            self._drop(conn, "closed by the agent")
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=2.0)
