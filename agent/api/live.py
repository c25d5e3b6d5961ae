"""The live WebSocket `/api/v1/robots/{robot_id}/live`: events, JPEG camera frames, action chunks and state.

Why it cannot slow the robot: the control loop only publishes to the EventBus (never blocks) and exposes its
latest observation. One hub thread holds a single bus subscription and hands each event, JSON-encoded once, to
every socket's outbox with `call_soon_threadsafe`. An outbox keeps a bounded queue of events (oldest dropped) and
one slot per camera holding only the newest frame, so a client that stops reading costs a fixed amount of memory,
and no JPEG is encoded for a camera whose previous frame it has not yet taken. JPEG encoding (OpenCV, releases
the GIL) runs on a small pool and is shared between viewers asking for the same frame, size and quality.

Query parameters: token, fps (0 = no frames; capped by api.live_max_fps), size (longest side in px), quality
(JPEG 10..95), cameras (comma list; default all), streams (comma list of events,frames,chunks,state).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import json
import logging
import threading
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from agent.api.auth import Permission, allowed, authenticate
from agent.api.errors import ApiError
from agent.store.store import to_jsonable

logger = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

STREAMS = ("events", "frames", "chunks", "state")
KIND_STREAM = {"chunk": "chunks", "state": "state"}  # every other kind is an "events" message
MAX_QUEUED_EVENTS = 256
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_BAD_REQUEST = 4401, 4403, 4404, 4400


def encode_jpeg(image: np.ndarray, size: int | None, quality: int) -> tuple[bytes, int, int]:
    """RGB uint8 HxWx3 -> JPEG bytes, resized so the longest side is `size` (aspect kept)."""
    import cv2

    height, width = image.shape[:2]
    if size and max(height, width) != size:
        scale = size / max(height, width)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (width, height), interpolation=interpolation)
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes(), width, height


class Outbox:
    """What one socket has yet to send: recent events (bounded) and the newest frame per camera."""

    def __init__(self, loop: asyncio.AbstractEventLoop, streams: set[str], max_events: int = MAX_QUEUED_EVENTS):
        self.loop = loop
        self.streams = streams
        self.events: collections.deque[str] = collections.deque(maxlen=max_events)
        self.frames: dict[str, str] = {}
        self.dropped_events = 0
        self.dropped_frames = 0
        self.wake = asyncio.Event()

    def offer_event_threadsafe(self, stream: str, text: str) -> None:
        if stream in self.streams:
            self.loop.call_soon_threadsafe(self._push_event, text)

    def _push_event(self, text: str) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped_events += 1
        self.events.append(text)
        self.wake.set()

    def has_pending_frame(self, camera: str) -> bool:
        return camera in self.frames

    def put_frame(self, camera: str, text: str) -> None:
        if camera in self.frames:
            self.dropped_frames += 1
        self.frames[camera] = text
        self.wake.set()

    async def take(self) -> list[str]:
        await self.wake.wait()
        self.wake.clear()
        batch = list(self.events)
        self.events.clear()
        batch.extend(self.frames.values())
        self.frames.clear()
        return batch


class LiveHub:
    def __init__(self, bus: Any, encoder_threads: int = 2, cache_size: int = 64):
        self._bus = bus
        self._outboxes: dict[str, set[Outbox]] = collections.defaultdict(set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscription = bus.subscribe(maxsize=4096) if bus is not None else None
        self._thread = threading.Thread(target=self._run, name="api-live-hub", daemon=True)
        self._encoder = concurrent.futures.ThreadPoolExecutor(encoder_threads, thread_name_prefix="api-jpeg")
        self._cache: collections.OrderedDict[tuple, concurrent.futures.Future] = collections.OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._frame_ids = 0
        self.frames_encoded = 0

    def start(self) -> None:
        if self._subscription is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        if self._subscription is not None:
            self._subscription.close()
        self._encoder.shutdown(wait=False, cancel_futures=True)

    def register(self, robot_id: str, outbox: Outbox) -> None:
        with self._lock:
            self._outboxes[robot_id].add(outbox)

    def unregister(self, robot_id: str, outbox: Outbox) -> None:
        with self._lock:
            self._outboxes[robot_id].discard(outbox)

    def viewers(self, robot_id: str) -> int:
        with self._lock:
            return len(self._outboxes.get(robot_id, ()))

    def stats(self, robot_id: str) -> list[dict[str, int]]:
        """Per connected viewer: what waits to be sent and what was dropped (bounded by design)."""
        with self._lock:
            outboxes = list(self._outboxes.get(robot_id, ()))
        return [
            {
                "queued_events": len(o.events),
                "pending_frames": len(o.frames),
                "dropped_events": o.dropped_events,
                "dropped_frames": o.dropped_frames,
            }
            for o in outboxes
        ]

    def _run(self) -> None:
        assert self._subscription is not None
        while not self._stop.is_set():
            event = self._subscription.get(timeout=0.2)
            if event is None:
                continue
            with self._lock:
                targets = list(self._outboxes.get(event.robot_id, ()))
            if not targets:
                continue
            stream = KIND_STREAM.get(event.kind, "events")
            message_type = {"chunks": "chunk", "state": "state"}.get(stream, "event")
            try:
                text = json.dumps(
                    {
                        "type": message_type,
                        "kind": event.kind,
                        "robot_id": event.robot_id,
                        "task_id": event.task_id,
                        "ts": event.ts,
                        "data": to_jsonable(event.data),
                    }
                )
            except (TypeError, ValueError):
                logger.warning("live event not serializable", extra={"kind": event.kind}, exc_info=True)
                continue
            for outbox in targets:
                with contextlib.suppress(RuntimeError):  # that socket's loop already closed
                    outbox.offer_event_threadsafe(stream, text)

    def _frame_message(self, robot_id: str, obs: Any, camera: str, size: int | None, quality: int) -> str:
        jpeg, width, height = encode_jpeg(obs.images[camera], size, quality)
        with self._cache_lock:
            self._frame_ids += 1
            frame_id = self._frame_ids
        return json.dumps(
            {
                "type": "frame",
                "robot_id": robot_id,
                "camera": camera,
                "ts": obs.timestamp,
                "frame_id": frame_id,
                "width": width,
                "height": height,
                "format": "jpeg",
                "data": base64.b64encode(jpeg).decode("ascii"),
            }
        )

    async def frame(self, robot_id: str, obs: Any, camera: str, size: int | None, quality: int) -> str:
        """The frame message (JSON text) for this observation, camera, size and quality: encoded once, shared by
        every viewer that asks for the same thing (fan-out costs a send per viewer, not an encode)."""
        key = (robot_id, camera, obs.timestamp, id(obs), size, quality)
        with self._cache_lock:
            future = self._cache.get(key)
            if future is None:
                future = self._encoder.submit(self._frame_message, robot_id, obs, camera, size, quality)
                self._cache[key] = future
                self.frames_encoded += 1
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        # Shielded: the encode is shared between viewers, and one viewer leaving (its task cancelled) must not
        # cancel a still-queued encode that other viewers are waiting for.
        return await asyncio.shield(asyncio.wrap_future(future))


def _token_from(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return websocket.query_params.get("token")


class _BadParam(ValueError):
    pass


def _parse_options(websocket: WebSocket, max_fps: float, cameras_available: list[str]) -> dict[str, Any]:
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
    return {"fps": fps, "size": size, "quality": quality, "streams": streams, "cameras": cameras}


async def _refuse(websocket: WebSocket, close_code: int, code: str, message: str) -> None:
    await websocket.send_text(json.dumps({"type": "error", "code": code, "message": message}))
    await websocket.close(code=close_code, reason=code)


async def _produce_frames(websocket_ctx: dict[str, Any], outbox: Outbox) -> None:
    hub: LiveHub = websocket_ctx["hub"]
    runtime = websocket_ctx["runtime"]
    robot_id = websocket_ctx["robot_id"]
    options = websocket_ctx["options"]
    period = 1.0 / options["fps"]
    loop = asyncio.get_running_loop()
    last_stamp: dict[str, Any] = {}
    while True:
        started = loop.time()
        obs = runtime.latest_observation()
        if obs is not None:
            for camera in options["cameras"]:
                if camera not in obs.images:
                    continue
                stamp = (obs.timestamp, id(obs))
                if last_stamp.get(camera) == stamp:
                    continue
                if outbox.has_pending_frame(camera):
                    outbox.dropped_frames += 1  # the client is behind: skip encoding, keep only what is waiting
                    continue
                last_stamp[camera] = stamp
                outbox.put_frame(camera, await hub.frame(robot_id, obs, camera, options["size"], options["quality"]))
        await asyncio.sleep(max(0.0, period - (loop.time() - started)))


async def _send(websocket: WebSocket, outbox: Outbox) -> None:
    while True:
        for text in await outbox.take():
            await websocket.send_text(text)


async def _receive(websocket: WebSocket, ws_ctx: dict[str, Any]) -> None:
    from agent.api.routers.coaching import coach_task

    ctx = ws_ctx["ctx"]
    token = ws_ctx["token"]
    while True:
        raw = await websocket.receive_text()
        try:
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("message must be a JSON object")
        except ValueError:
            await websocket.send_text(json.dumps({"type": "error", "code": "malformed_json", "message": "send JSON objects"}))
            continue
        kind = message.get("type")
        if kind == "ping":
            await websocket.send_text(json.dumps({"type": "pong", "ts": message.get("ts")}))
        elif kind == "coach":
            await websocket.send_text(json.dumps(await _coach(ctx, token, ws_ctx, message, coach_task)))
        else:
            await websocket.send_text(
                json.dumps({"type": "error", "code": "unknown_message", "message": f"unknown message type {kind!r}"})
            )


async def _coach(ctx: Any, token: Any, ws_ctx: dict[str, Any], message: dict[str, Any], coach_task: Any) -> dict:
    if not allowed(token.role, Permission.COACHING):
        return {"type": "error", "request": "coach", "code": "forbidden", "message": f"role {token.role!r} may not coach"}
    utterance = message.get("utterance")
    task_id = message.get("task_id")
    if not isinstance(utterance, str) or not utterance.strip() or len(utterance) > 500:
        return {"type": "error", "request": "coach", "code": "validation_error", "message": "utterance: 1..500 characters"}
    if task_id is None:
        status = await run_in_threadpool(ws_ctx["runtime"].status)
        task_id = status.get("task_id") or (status.get("task") or {}).get("id") if isinstance(status, dict) else None
        if task_id is None:
            return {"type": "error", "request": "coach", "code": "no_active_task", "message": "no task is running"}
    try:
        result = await run_in_threadpool(coach_task, ctx, str(task_id), utterance)
    except ApiError as exc:
        return {"type": "error", "request": "coach", "code": exc.code, "message": exc.message}
    return {"type": "ack", "request": "coach", **result.model_dump(mode="json")}


@router.websocket("/robots/{robot_id}/live")
async def live(websocket: WebSocket, robot_id: str) -> None:
    ctx = websocket.app.state.ctx
    await websocket.accept()
    try:
        token = await run_in_threadpool(authenticate, ctx.store, _token_from(websocket))
    except ApiError as exc:
        await _refuse(websocket, CLOSE_UNAUTHORIZED, exc.code, exc.message)
        return
    if not allowed(token.role, Permission.LIVE):
        await _refuse(websocket, CLOSE_FORBIDDEN, "forbidden", f"role {token.role!r} may not watch the live stream")
        return
    if robot_id not in ctx.registry:
        await _refuse(websocket, CLOSE_NOT_FOUND, "robot_not_found", f"no robot {robot_id!r}")
        return
    runtime = ctx.registry.get(robot_id)
    description = ctx.registry.describe(robot_id)
    cameras_available = [c["name"] for c in (description or {}).get("cameras", [])]
    try:
        options = _parse_options(websocket, ctx.config.live_max_fps, cameras_available)
    except _BadParam as exc:
        await _refuse(websocket, CLOSE_BAD_REQUEST, "validation_error", str(exc))
        return
    hub: LiveHub = ctx.hub
    outbox = Outbox(asyncio.get_running_loop(), options["streams"])
    try:  # where things stand now, so a viewer joining mid-task need not wait for the next event
        from agent.api.routers.robots import robot_status

        status = await run_in_threadpool(robot_status, ctx, robot_id)
    except Exception:
        logger.warning("robot status unavailable for the live hello", extra={"robot_id": robot_id}, exc_info=True)
        status = None
    await websocket.send_text(
        json.dumps(
            {
                "type": "hello",
                "robot_id": robot_id,
                "role": token.role,
                "fps": options["fps"],
                "size": options["size"],
                "quality": options["quality"],
                "cameras": options["cameras"],
                "streams": sorted(options["streams"]),
                "description": description,
                "status": status,
            }
        )
    )
    ws_ctx = {"ctx": ctx, "token": token, "hub": hub, "runtime": runtime, "robot_id": robot_id, "options": options}
    hub.register(robot_id, outbox)
    tasks = [asyncio.create_task(_send(websocket, outbox)), asyncio.create_task(_receive(websocket, ws_ctx))]
    if "frames" in options["streams"] and options["fps"] > 0:
        tasks.append(asyncio.create_task(_produce_frames(ws_ctx, outbox)))
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError | ConnectionError):
                logger.warning("live socket task failed", exc_info=exc)
    finally:
        hub.unregister(robot_id, outbox)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
