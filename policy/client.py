"""PolicyClient: the orchestrator's synchronous, thread-safe client for the policy worker.

Why not openpi_client.WebsocketClientPolicy: the orchestrator needs what it lacks — a receive timeout (a late
policy must never stall a robot: the executor holds position instead), reconnection after the worker restarts,
typed errors (`PolicyUnavailable` = no answer, `PolicyServerError` = the worker answered with an error frame),
and the hearth extensions (subtask, RTC continuation, episode id). The bytes on the wire are the same.

One request is in flight per connection (the protocol is strictly request/reply), so a lock serialises callers;
several robots should each use their own client, which the server then batches.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection

from hearth_wire.client import open_connection
from hearth_wire.codec import WireError, packb, unpackb
from policy.mappings import DELAY_KEY, EPISODE_KEY, PREV_CHUNK_KEY, SUBTASK_KEY
from policy.types import ActionChunk, ObservationLike

logger = logging.getLogger(__name__)


class PolicyUnavailable(RuntimeError):
    """No usable answer: connection refused, dropped, or the reply did not arrive within the timeout."""


class PolicyServerError(RuntimeError):
    """The worker answered with an error frame (bad input or an inference failure); the text is its message."""


def _ws_url(url: str) -> str:
    if "://" not in url:
        url = "ws://" + url
    scheme = urlsplit(url).scheme
    if scheme not in ("ws", "wss"):
        raise ValueError(f"policy URL must start with ws:// or wss://, got {url!r}")
    return url


class PolicyClient:
    """Talk to a hearth (or any openpi-compatible) policy worker; reconnects lazily after a failure."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 5.0, episode_id: str | None = None):
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.url = _ws_url(url)
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.episode_id = episode_id
        self._lock = threading.RLock()
        self._conn: ClientConnection | None = None
        self._metadata: dict[str, Any] | None = None
        self._chunk_ids = itertools.count()
        self.reconnects = 0

    # ---- connection ---------------------------------------------------------------------------------
    def _connect(self) -> ClientConnection:
        try:
            conn = open_connection(self.url, self.api_key, self.timeout_s)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise PolicyServerError(f"policy worker at {self.url} refused the API key (HTTP {status})") from exc
            raise PolicyUnavailable(f"policy worker at {self.url} refused the connection (HTTP {status})") from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise PolicyUnavailable(f"cannot connect to policy worker at {self.url}: {exc}") from exc
        try:
            frame = conn.recv(timeout=self.timeout_s)
            metadata = unpackb(frame)
            if not isinstance(metadata, dict):
                raise WireError("metadata frame is not a map")
        except (TimeoutError, ConnectionClosed, WireError, OSError) as exc:
            conn.close()
            raise PolicyUnavailable(f"policy worker at {self.url} sent no valid metadata: {exc}") from exc
        if self._metadata is not None:
            self.reconnects += 1
            logger.info("reconnected to policy worker %s", self.url)
        self._metadata = metadata
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @property
    def metadata(self) -> dict[str, Any]:
        """The worker's metadata frame (camera/state/action names, horizon, control rate, the robot interface it was
        trained on); connects if needed."""
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            assert self._metadata is not None
            return self._metadata

    def _request(self, payload: dict[str, Any]) -> dict[str, Any]:
        data = packb(payload)
        with self._lock:
            for attempt in (0, 1):
                fresh = self._conn is None
                if fresh:
                    self._conn = self._connect()
                conn = self._conn
                assert conn is not None
                try:
                    conn.send(data)
                except (ConnectionClosed, OSError) as exc:
                    # The worker went away between requests (restart): nothing was processed, so retry once.
                    self._drop()
                    if attempt == 0 and not fresh:
                        continue
                    raise PolicyUnavailable(f"policy worker at {self.url} closed the connection: {exc}") from exc
                try:
                    reply = conn.recv(timeout=self.timeout_s)
                except TimeoutError as exc:
                    # A late reply would arrive in answer to the *next* request; the connection is unusable.
                    self._drop()
                    raise PolicyUnavailable(
                        f"policy worker at {self.url} did not answer within {self.timeout_s}s"
                    ) from exc
                except (ConnectionClosed, OSError) as exc:
                    self._drop()
                    raise PolicyUnavailable(f"policy worker at {self.url} dropped the connection: {exc}") from exc
                if isinstance(reply, str):
                    self._drop()  # the server closes with 1011 after an error frame
                    raise PolicyServerError(reply)
                try:
                    decoded = unpackb(reply)
                except WireError as exc:
                    self._drop()
                    raise PolicyServerError(f"policy worker sent an undecodable reply: {exc}") from exc
                if not isinstance(decoded, dict):
                    self._drop()
                    raise PolicyServerError(f"policy worker reply is not a map: {type(decoded).__name__}")
                return decoded
        raise AssertionError("unreachable")

    # ---- API ----------------------------------------------------------------------------------------
    def _observation_payload(self, obs: ObservationLike, prompt: str) -> dict[str, Any]:
        # A robot may carry more cameras than the policy uses (e.g. a "third" view for recording only): send
        # just the policy's cameras, so nothing is refused as unknown and no bandwidth is wasted.
        wanted = self.metadata.get("camera_names")
        images = obs.images
        if isinstance(wanted, list) and all(name in images for name in wanted):
            images = {name: images[name] for name in wanted}
        payload: dict[str, Any] = {
            "images": {name: np.ascontiguousarray(image) for name, image in images.items()},
            "state": np.asarray(obs.state, dtype=np.float32),
            "prompt": prompt,
        }
        if self.episode_id:
            payload[EPISODE_KEY] = self.episode_id
        return payload

    def act(
        self, obs: ObservationLike, prompt: str, prev_chunk: np.ndarray | None = None, delay: int = 0
    ) -> tuple[ActionChunk, dict[str, float]]:
        """One chunk for `prompt` (the subtask); with prev_chunk/delay, a real-time-chunking continuation.

        Returns the chunk and timing in ms: round_trip_ms (measured here) plus the worker's server_* and
        policy_* fields.
        """
        payload = self._observation_payload(obs, prompt)
        if prev_chunk is not None:
            payload[PREV_CHUNK_KEY] = np.asarray(prev_chunk, dtype=np.float32)
            payload[DELAY_KEY] = int(delay)
        started = time.perf_counter()
        reply = self._request(payload)
        round_trip_ms = (time.perf_counter() - started) * 1e3
        if "actions" not in reply:
            raise PolicyServerError(f"policy worker reply has no 'actions' (keys: {sorted(reply)})")
        metadata = self._metadata or {}
        names = list(metadata.get("action_names") or [])
        actions = np.asarray(reply["actions"], dtype=np.float32)
        try:
            chunk = ActionChunk(
                actions=actions,
                action_names=names if len(names) == (actions.shape[1] if actions.ndim == 2 else -1) else [],
                control_hz=float(metadata.get("control_hz") or 20.0),
                subtask=prompt,
                chunk_id=next(self._chunk_ids),
            )
        except ValueError as exc:
            raise PolicyServerError(f"policy worker sent an invalid chunk: {exc}") from exc
        return chunk, self._timing(reply, round_trip_ms)

    def subtask(self, obs: ObservationLike, task: str) -> str:
        """System 2: the next subtask text for `task` ("done" when the policy thinks the task is finished)."""
        payload = self._observation_payload(obs, task)
        payload[SUBTASK_KEY] = True
        reply = self._request(payload)
        text = reply.get(SUBTASK_KEY)
        if not isinstance(text, str):
            raise PolicyServerError(f"policy worker reply has no {SUBTASK_KEY!r} text (keys: {sorted(reply)})")
        return text

    @staticmethod
    def _timing(reply: dict[str, Any], round_trip_ms: float) -> dict[str, float]:
        timing = {"round_trip_ms": round_trip_ms}
        for group in ("server_timing", "policy_timing"):
            values = reply.get(group)
            if isinstance(values, dict):
                prefix = group.split("_")[0]
                for key, value in values.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        timing[f"{prefix}_{key}"] = float(value)
        return timing

    def healthy(self) -> bool:
        """True when `GET /healthz` answers 200 within the timeout (does not touch the WebSocket session)."""
        parts = urlsplit(self.url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        cls = http.client.HTTPSConnection if parts.scheme == "wss" else http.client.HTTPConnection
        conn = cls(host, port, timeout=self.timeout_s)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
