"""The WebSocket front end of a fleet: terminates robot connections and sends each request to a model replica.

Why a separate, light deployment: a WebSocket stays on the replica that accepted it, so if the model replicas
accepted connections themselves, one robot's chunks would always run on one GPU however busy it is, and a replica
restart would drop its robots. Here the ingress (no model, no GPU) keeps the connection and sends every request
through a deployment handle, whose router picks the least-loaded model replica; the model replicas batch requests
from any robot. A replica that dies mid-request is retried on another, so the robot only sees a slower chunk.

The wire is the policy worker's (policy/server.py), produced by the same functions: one
metadata frame on open, one reply per binary request, errors as a text frame then close 1011, `GET /healthz`, and
`GET /metrics` (this ingress replica's counters). Replies carry one additive key, `hearth/served_by`
(`{"replica": ..., "version": ...}`), which unmodified openpi clients ignore.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, Response
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.serve.handle import DeploymentHandle

from hearth_wire.codec import WireError, packb, unpackb
from hearth_wire.service import api_key_accepted
from policy.fleet.model import ReplicaResult
from policy.mappings import EPISODE_KEY, PolicySpec, cap_error, control_ack, get_mapping
from policy.metrics import CONTENT_TYPE, WorkerMetrics
from policy.server import (
    BAD_REQUEST_REASON,
    INTERNAL_ERROR_REASON,
    InferenceResult,
    build_reply,
    worker_metadata,
)
from policy.types import PolicyInputError

logger = logging.getLogger(__name__)

SERVED_BY_KEY = "hearth/served_by"
REPLICA_RETRIES = 4  # a killed replica is noticed within a retry or two; then the router avoids it
RETRY_BACKOFF_S = 0.25
POLICY_VIOLATION = 1008


class ReplicaUnavailable(RuntimeError):
    """No model replica answered after every retry (all of them down, or the deployment is being replaced)."""


@serve.ingress()
class PolicyIngress:
    """Serve deployment class (options in policy/fleet/app.py): WebSockets in front, model handle behind."""

    def __init__(
        self,
        model: DeploymentHandle,
        mapping: str = "hearth",
        default_prompt: str | None = None,
        api_keys: list[str] | None = None,
        max_image_side: int = 1024,
    ):
        self.model = model
        self.mapping_name = mapping
        self.default_prompt = default_prompt
        self.api_keys = [k for k in (api_keys or []) if k]
        self.max_image_side = max_image_side
        self.metrics = WorkerMetrics()
        self._wire: tuple[Any, PolicySpec, bytes] | None = None
        self._wire_lock = asyncio.Lock()

    async def _wire_setup(self) -> tuple[Any, PolicySpec, bytes]:
        """(mapping, spec, metadata frame), from the model's metadata, fetched once (a rollout keeps the interface)."""
        async with self._wire_lock:
            if self._wire is None:
                metadata = await self._call_model("metadata")
                spec = PolicySpec.from_metadata(metadata)
                mapping = get_mapping(self.mapping_name, spec, default_prompt=self.default_prompt)
                self._wire = (mapping, spec, packb(worker_metadata(metadata, mapping)))
            return self._wire

    async def _call_model(self, method: str, *args: Any) -> Any:
        """Call the model deployment, retrying on another replica when the chosen one died or is unreachable."""
        for attempt in range(REPLICA_RETRIES):
            try:
                return await getattr(self.model, method).remote(*args)
            except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                logger.warning("model replica lost during %s (attempt %d): %s", method, attempt + 1, exc)
                self.metrics.errors.labels(reason="replica_lost").inc()
                await asyncio.sleep(RETRY_BACKOFF_S * (attempt + 1))
        raise ReplicaUnavailable(f"no model replica answered {method!r} after {REPLICA_RETRIES} tries")

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The ASGI app, built per replica around this instance's bound methods (no class-based-view magic)."""
        app = FastAPI(title="hearth policy fleet", docs_url=None, redoc_url=None, openapi_url=None)
        app.add_api_route("/healthz", self.healthz, methods=["GET"], response_class=PlainTextResponse)
        app.add_api_route("/metrics", self.metrics_text, methods=["GET"])
        app.add_api_websocket_route("/", self.session)
        return app

    def _authorized(self, header: str | None) -> bool:
        return api_key_accepted(self.api_keys, header)

    async def healthz(self) -> str:
        return "OK\n"

    async def metrics_text(self, request: Request) -> Response:
        if not self._authorized(request.headers.get("authorization")):
            self.metrics.errors.labels(reason="auth").inc()
            return PlainTextResponse(
                "missing or wrong API key (send 'Authorization: Api-Key <key>')\n", status_code=401
            )
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def session(self, ws: WebSocket) -> None:
        if not self._authorized(ws.headers.get("authorization")):
            self.metrics.errors.labels(reason="auth").inc()
            await ws.close(code=POLICY_VIOLATION)  # before accept: the handshake is refused (HTTP 403)
            return
        await ws.accept()
        self.metrics.connections_total.inc()
        self.metrics.connections_open.inc()
        try:
            mapping, spec, metadata_frame = await self._wire_setup()
            await ws.send_bytes(metadata_frame)
            await self._serve(ws, mapping, spec)
        except WebSocketDisconnect as exc:
            if exc.code not in (1000, 1001):
                self.metrics.errors.labels(reason="disconnect").inc()
        except ReplicaUnavailable as exc:
            self.metrics.errors.labels(reason="internal").inc()
            await _send_error(ws, str(exc), INTERNAL_ERROR_REASON)
        finally:
            self.metrics.connections_open.dec()

    async def _serve(self, ws: WebSocket, mapping: Any, spec: PolicySpec) -> None:
        episode_id: str | None = None
        prev_total_ms: float | None = None
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            received = time.perf_counter()
            kind = "unknown"
            try:
                if message.get("bytes") is None:
                    raise PolicyInputError("expected a binary msgpack frame, got a text frame")
                decoded_message = unpackb(message["bytes"])
                ack = control_ack(decoded_message)
                if ack is not None:  # openpi's episode_start / episode_end, as the plain worker answers them
                    await ws.send_bytes(packb(ack))
                    continue
                request = mapping.parse(decoded_message, spec, self.max_image_side)
                kind = request.kind
                episode_id = request.episode_id or episode_id
                decoded = time.perf_counter()
                outcome: ReplicaResult = await self._call_model("infer", request)
                if outcome.result is None:
                    if outcome.bad_input:
                        raise PolicyInputError(outcome.error or "bad input")
                    raise RuntimeError(outcome.error or "inference failed")
                result: InferenceResult = outcome.result
                done = time.perf_counter()
                result.queue_ms = max((done - decoded) * 1e3 - result.model_ms, 0.0)
                reply = build_reply(
                    mapping, request, result, (decoded - received) * 1e3, (done - decoded) * 1e3, prev_total_ms
                )
                reply[SERVED_BY_KEY] = {"replica": outcome.replica, "version": outcome.version}
                if episode_id:
                    reply[EPISODE_KEY] = episode_id
                await ws.send_bytes(packb(reply))
            except (WireError, PolicyInputError) as exc:
                self.metrics.errors.labels(reason="decode" if isinstance(exc, WireError) else "bad_input").inc()
                self.metrics.requests.labels(kind=kind, outcome="error").inc()
                await _send_error(ws, f"bad request: {cap_error(str(exc))}", BAD_REQUEST_REASON)
                return
            except (WebSocketDisconnect, ReplicaUnavailable):
                raise
            except Exception:
                self.metrics.errors.labels(reason="internal").inc()
                self.metrics.requests.labels(kind=kind, outcome="error").inc()
                logger.exception("inference failed")
                await _send_error(ws, traceback.format_exc(), INTERNAL_ERROR_REASON)
                return
            total_s = time.perf_counter() - received
            prev_total_ms = total_s * 1e3
            self.metrics.requests.labels(kind=kind, outcome="ok").inc()
            self.metrics.request_latency.labels(kind=kind).observe(total_s)


async def _send_error(ws: WebSocket, text: str, reason: str) -> None:
    with contextlib.suppress(Exception):  # the client may already be gone
        await ws.send_text(text)
        await ws.close(code=1011, reason=reason)
