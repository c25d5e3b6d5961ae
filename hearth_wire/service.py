"""The WebSocket server skeleton under the policy worker (policy/server.py) and the robot bridge (robots/bridge_server.py).

Both serve binary msgpack frames on one port with a few plain HTTP routes beside them (`/healthz` always open, the
rest behind `Authorization: Api-Key <key>`), bind port 0 in tests, report readiness once, and stop from any thread
or signal handler. That shared life cycle lives here once; a server supplies its connection handler, its routes
and what it starts before listening (`_startup`/`_shutdown`) and waits for before it reports ready (`_until_ready`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

logger = logging.getLogger(__name__)

AUTH_HINT = "missing or wrong API key (send 'Authorization: Api-Key <key>')\n"


def api_key_accepted(api_keys: Sequence[str], header: str | None) -> bool:
    """Whether an `Authorization: Api-Key <key>` header carries one of `api_keys` (no keys: auth is off)."""
    if not api_keys:
        return True
    if not header or not header.startswith("Api-Key "):
        return False
    offered = header[len("Api-Key ") :].strip().encode()
    # Compare against every key so the time taken does not reveal which key nearly matched.
    matches = [hmac.compare_digest(offered, key.encode()) for key in api_keys]
    return any(matches)


def text_response(connection: ServerConnection, status: HTTPStatus, body: str, content_type: str) -> Response:
    """An HTTP answer with its own Content-Type (websockets' `respond` always says text/plain)."""
    response = connection.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


class WebSocketService:
    """Bind, report ready, serve until `stop()`; subclasses implement `_handle` and `_route` (and the hooks)."""

    name = "websocket service"

    def __init__(
        self,
        host: str,
        port: int,
        api_keys: Sequence[str] | None,
        max_message_bytes: int | None,
        keepalive_s: float,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.api_keys = [k for k in (api_keys or []) if k]
        self.max_message_bytes = max_message_bytes
        self.keepalive_s = float(keepalive_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._bound_port: int | None = None

    # ---- what a server supplies ---------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    def _route(self, connection: ServerConnection, path: str) -> Response | None:
        """An authorized HTTP request for `path`: a Response, or None to go on with the WebSocket handshake."""
        return None

    def _healthz(self, connection: ServerConnection) -> Response:
        return connection.respond(HTTPStatus.OK, "OK\n")

    def _refused(self, connection: ServerConnection) -> None:
        """Called when a request without a valid key is turned away (count it, log it)."""
        logger.warning("%s refused %s: missing or wrong API key", self.name, connection.remote_address)

    def _startup(self) -> None:
        """Before binding: start what serving needs (threads, executors)."""

    def _shutdown(self) -> None:
        """After the socket is closed, also when start-up failed: stop what `_startup` started."""

    async def _until_ready(self) -> None:
        """After binding, before reporting ready (e.g. a model warm-up); raising here aborts `serve()`."""

    # ---- life cycle ---------------------------------------------------------------------------------
    @property
    def bound_port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError(f"the {self.name} is not listening yet")
        return self._bound_port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.bound_port}"

    async def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Listen until `stop()` (or cancellation); `on_ready(url)` once bound (port 0: the real port) and ready."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._startup()
        try:
            async with serve(
                self._handle,
                self.host,
                self.port,
                compression=None,
                max_size=self.max_message_bytes,
                process_request=self._process_request,
                ping_interval=self.keepalive_s,
                ping_timeout=self.keepalive_s,
                logger=logging.getLogger(f"{type(self).__module__}.websockets"),
            ) as server:
                self._bound_port = int(next(iter(server.sockets)).getsockname()[1])
                await self._until_ready()
                logger.info("%s listening on %s", self.name, self.url, extra={"url": self.url})
                self._ready.set()
                if on_ready is not None:
                    on_ready(self.url)
                await self._stop_event.wait()
                logger.info("%s shutting down", self.name)
        finally:
            self._ready.clear()
            self._shutdown()

    def stop(self) -> None:
        """Ask `serve()` to return; safe from any thread and from signal handlers."""
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    @contextlib.contextmanager
    def run_in_thread(self, timeout_s: float = 30.0) -> Iterator[int]:
        """Serve on a background thread and yield the bound port (port 0 picks a free one). For tests and the demo."""
        failure: list[BaseException] = []

        def target() -> None:
            try:
                asyncio.run(self.serve())
            except BaseException as exc:
                failure.append(exc)
                logger.exception("%s thread failed", self.name)

        thread = threading.Thread(target=target, name=self.name.replace(" ", "-"), daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.05):
            if failure or not thread.is_alive():
                raise RuntimeError(f"{self.name} failed to start: {failure[0] if failure else 'thread exited'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start within {timeout_s}s")
        try:
            yield self.bound_port
        finally:
            self.stop()
            thread.join(timeout_s)

    # ---- HTTP side ----------------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return self._healthz(connection)
        if not api_key_accepted(self.api_keys, request.headers.get("Authorization")):
            self._refused(connection)
            return connection.respond(HTTPStatus.UNAUTHORIZED, AUTH_HINT)
        return self._route(connection, path)
