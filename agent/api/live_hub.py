"""The live hub: fans the EventBus and camera frames out to every open live socket without slowing the robot.

Why it cannot slow the robot: the control loop only publishes to the EventBus (never blocks) and exposes its
latest observation. One hub thread holds a single bus subscription and hands each event, JSON-encoded once, to
every socket's outbox with `call_soon_threadsafe`. An outbox keeps a bounded queue of events (oldest dropped) and
one slot per camera holding only the newest frame, so a client that stops reading costs a fixed amount of memory,
and no JPEG is encoded for a camera whose previous frame it has not yet taken. JPEG encoding (OpenCV, releases
the GIL) runs on a small pool and is shared between viewers asking for the same frame, size and quality.
The sockets themselves (auth, options, client messages) are agent/api/live.py.
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

from agent.api.live_messages import KIND_MESSAGE_TYPE, LiveFrame
from agent.store.store import to_jsonable

logger = logging.getLogger(__name__)

KIND_STREAM = {"chunk": "chunks", "state": "state"}  # every other kind is an "events" message
MAX_QUEUED_EVENTS = 256


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
            message_type = KIND_MESSAGE_TYPE.get(event.kind, "event")
            try:  # a dict, not a LiveEventMessage: this runs for every event at control rate (the tests validate)
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
        jpeg, width, height = encode_jpeg(obs.operator_image(camera), size, quality)  # people see the sharp view
        with self._cache_lock:
            self._frame_ids += 1
            frame_id = self._frame_ids
        return LiveFrame(
            robot_id=robot_id,
            camera=camera,
            ts=obs.timestamp,
            frame_id=frame_id,
            width=width,
            height=height,
            data=base64.b64encode(jpeg).decode("ascii"),
        ).model_dump_json()

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
